"""``lakehouse synth`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lakehouse.errors import EX_USAGE
from lakehouse_cli.main import app


def test_synth_command_writes_the_layout(tmp_path: Path) -> None:
    out = tmp_path / "h"
    result = CliRunner().invoke(
        app, ["synth", "--patients", "12", "--sites", "3", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["seed"] == 3
    assert manifest["parameters"]["patients"] == 12
    assert (out / "his" / "his.sqlite").is_file()
    assert "lis" in result.output


def test_synth_command_reports_a_code_for_a_used_folder(tmp_path: Path) -> None:
    (tmp_path / "other").write_text("x")
    result = CliRunner().invoke(app, ["synth", "--patients", "2", "--out", str(tmp_path)])
    assert result.exit_code == EX_USAGE
    assert "LH-SYN-002" in result.output
