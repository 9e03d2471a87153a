"""A second process against a busy embedded Derby catalog gets LH-ENV-005, not a stack trace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode
from lakehouse.settings import Settings
from tests.support.processes import lakehouse_env


@pytest.mark.timeout(600)
def test_doctor_reports_the_catalog_held_by_another_process(
    spark: SparkSession, settings: Settings
) -> None:
    spark.catalog.listDatabases()  # this test run's session holds the Derby database
    env = lakehouse_env(settings.data_dir)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lakehouse"), "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == ErrorCode.CATALOG_UNAVAILABLE.exit_status, done.stdout
    assert "[FAIL] catalog" in done.stdout
    assert "LH-ENV-005" in done.stdout
    assert "in use by another process" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
