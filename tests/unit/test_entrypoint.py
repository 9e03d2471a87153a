"""The shell of job entrypoints: result printed, catalogued errors become exit statuses."""

from __future__ import annotations

import pytest

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error


def test_result_is_printed_and_status_is_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_entrypoint(lambda cfg: f"master {cfg.spark.master}") == 0
    assert capsys.readouterr().out == "master local[*]\n"


def test_a_lakehouse_error_becomes_its_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    def fail(cfg: object) -> None:
        raise error(ErrorCode.TABLE_NOT_FOUND, table="silver.x")

    assert run_entrypoint(fail) == ErrorCode.TABLE_NOT_FOUND.exit_status
    assert "error [LH-TBL-007]" in capsys.readouterr().err


def test_bad_settings_exit_with_the_config_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SPARK__SHUFFLE_PARTITIONS", "0")
    assert run_entrypoint(lambda cfg: None) == ErrorCode.CONFIG_INVALID.exit_status
