"""Scenarios that run in their own process and catalog, shared by the tests that read them.

The silver scenario (synthetic hospital -> bronze -> silver, tests/integration/silver/
silver_scenario.py) is the costliest setup of the suite; the gold scenario continues in the
same data folder after it, so the hospital is generated, landed and conformed once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO, lakehouse_env

SILVER_PATIENTS = 30


def run_scenario(module: str, data: Path, *args: str) -> dict[str, Any]:
    """Run ``python -m module OUT_JSON *args`` on ``data`` and return its JSON."""
    out = data / f"{module.rsplit('.', 1)[-1]}.json"
    ran = subprocess.run(
        [sys.executable, "-m", module, str(out), *args],
        cwd=REPO,
        env=lakehouse_env(data, SPARK__MASTER="local[2]", SPARK__DRIVER_MEMORY="2g"),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


@pytest.fixture(scope="session")
def silver_scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(data folder, result) of the silver scenario."""
    data = tmp_path_factory.mktemp("silver-scenario")
    result = run_scenario("tests.integration.silver.silver_scenario", data, str(SILVER_PATIENTS))
    return data, result


@pytest.fixture(scope="session")
def gold_scenario(silver_scenario: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """Result of the gold scenario, run on the silver scenario's data folder."""
    data, _ = silver_scenario
    return run_scenario("tests.integration.gold.gold_scenario", data)
