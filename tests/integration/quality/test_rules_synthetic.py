"""The shipped rules over a generated synthetic hospital (slow: synth, ingest and silver).

Clean deliveries raise no failure; with dirt, every defect class the truth records is
caught by its rules (the mapping of tests/integration/quality/test_rules.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.quality.test_rules import DEFECTS
from tests.support.processes import REPO, lakehouse_env

PATIENTS = 25


def _scenario(tmp_path_factory: pytest.TempPathFactory, mode: str) -> dict[str, Any]:
    data = tmp_path_factory.mktemp(f"quality-{mode}")
    out = data / "result.json"
    ran = subprocess.run(
        [sys.executable, "-m", "tests.integration.quality.quality_scenario", str(out),
         str(PATIENTS), mode],
        cwd=REPO, env=lakehouse_env(data, SPARK__MASTER="local[2]", SPARK__DRIVER_MEMORY="2g"),
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


@pytest.mark.slow
def test_clean_deliveries_raise_no_failure(tmp_path_factory: pytest.TempPathFactory) -> None:
    result = _scenario(tmp_path_factory, "clean")
    assert result["defects"] == []
    bad = {k: v for k, v in result["results"].items() if v["status"] in ("fail", "error")}
    assert bad == {}


@pytest.mark.slow
def test_every_injected_defect_class_is_caught(tmp_path_factory: pytest.TempPathFactory) -> None:
    result = _scenario(tmp_path_factory, "dirty")
    errors = {k: v for k, v in result["results"].items() if v["status"] == "error"}
    assert errors == {}
    failed = {k for k, v in result["results"].items() if v["status"] == "fail"}
    missed = {d: DEFECTS[d][1] for d in result["defects"] if not DEFECTS[d][1] & failed}
    assert missed == {}
