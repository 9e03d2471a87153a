"""`lakehouse demo` as a user runs it: a fresh process, its own catalog, exit status 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import lakehouse_env

LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "stage",
    [
        # A three-patient synthetic hospital: the fresh process, its catalog and the next
        # process reading it, in make test.
        "synth",
        # Every table of every spec created by a fresh process (two minutes: make test-all;
        # tests/integration/test_runs_and_demo.py runs the same stage on the shared session).
        pytest.param("foundation", marks=pytest.mark.slow),
    ],
)
def test_demo_stage_then_sql_in_a_new_process(tmp_path: Path, stage: str) -> None:
    env = lakehouse_env(tmp_path / "data", SPARK__MASTER="local[2]", SYNTH__PATIENTS="3")

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

    ran = lakehouse("demo", "--stage", stage)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Demo finished:" in ran.stdout
    assert stage in ran.stdout
    if stage == "synth":
        assert (tmp_path / "data" / "synthetic" / "manifest.json").is_file()

    # The run is visible by name to the next process through the persistent catalog.
    query = lakehouse("sql", "select job, status from ops.job_runs")
    assert query.returncode == 0, query.stderr[-3000:]
    assert f"demo.{stage}" in query.stdout
    assert "succeeded" in query.stdout

    wrong = lakehouse("demo", "--stage", "nope")
    assert wrong.returncode == 64
    assert "LH-JOB-002" in wrong.stderr
