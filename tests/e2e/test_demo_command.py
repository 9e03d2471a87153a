"""`lakehouse demo` as a user runs it: a fresh process, its own catalog, exit status 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


@pytest.mark.timeout(900)
def test_demo_foundation_then_sql_in_a_new_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(
        LAKEHOUSE_HOME=str(REPO),
        LAKEHOUSE_DATA_DIR=str(tmp_path / "data"),
        LAKEHOUSE_SPARK__MASTER="local[2]",
        LAKEHOUSE_SPARK__UI_ENABLED="false",
        LAKEHOUSE_SPARK__DRIVER_MEMORY="1g",
    )

    def lakehouse(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LAKEHOUSE), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    ran = lakehouse("demo", "--stage", "foundation")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Demo finished:" in ran.stdout
    assert "foundation" in ran.stdout

    # The run is visible by name to the next process through the persistent catalog.
    query = lakehouse("sql", "select job, status from ops.job_runs")
    assert query.returncode == 0, query.stderr[-3000:]
    assert "demo.foundation" in query.stdout
    assert "succeeded" in query.stdout

    wrong = lakehouse("demo", "--stage", "nope")
    assert wrong.returncode == 64
    assert "LH-JOB-002" in wrong.stderr
