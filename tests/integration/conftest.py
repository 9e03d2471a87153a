"""Scenarios that run in their own process and catalog, shared by the tests that read them.

The silver scenario (synthetic hospital -> bronze -> silver, tests/integration/silver/
silver_scenario.py) is the costliest setup of the suite; the gold scenario continues in the
same data folder after it, so the hospital is generated, landed and conformed once.

The silver scenario starts in the background as soon as collection shows that a selected
test needs it, so its own JVM works while the test run's session runs the other tests (most
of a Spark test's time is driver round trips, not both cores); the fixture waits for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.processes import REPO, lakehouse_env

SILVER_PATIENTS = 30
SCENARIO_TIMEOUT_S = 1800


class Scenario:
    """``python -m module OUT_JSON *args`` on a data folder, started now, awaited later."""

    def __init__(self, module: str, data: Path, *args: str) -> None:
        name = module.rsplit(".", 1)[-1]
        self.out = data / f"{name}.json"
        self._log: IO[str] = (data / f"{name}.log").open("w", encoding="utf-8")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module, str(self.out), *args],
            cwd=REPO,
            env=lakehouse_env(data, SPARK__MASTER="local[2]", SPARK__DRIVER_MEMORY="2g"),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def result(self) -> dict[str, Any]:
        """Wait for the process; its JSON, or a failure showing the end of its log."""
        try:
            code = self._proc.wait(timeout=SCENARIO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            code = -9
        finally:
            self._log.close()
        log = Path(self._log.name).read_text(encoding="utf-8", errors="replace")
        assert code == 0, f"scenario exited {code}:\n{log[-4000:]}"
        result: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return result

    def stop(self) -> None:
        """Kill the process if the run ends before anyone awaited it."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._log.close()


_SILVER = pytest.StashKey[Scenario]()


def _start_silver(config: pytest.Config) -> Scenario:
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    data = factory.mktemp("silver-scenario")
    scenario = Scenario("tests.integration.silver.silver_scenario", data, str(SILVER_PATIENTS))
    config.stash[_SILVER] = scenario
    return scenario


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the silver scenario now when a selected test will need it."""
    if session.config.option.collectonly:
        return
    if any("silver_scenario" in getattr(item, "fixturenames", ()) for item in session.items):
        _start_silver(session.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    scenario = config.stash.get(_SILVER, None)
    if scenario is not None:
        scenario.stop()


@pytest.fixture(scope="session")
def silver_scenario(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    """(data folder, result) of the silver scenario."""
    scenario = request.config.stash.get(_SILVER, None) or _start_silver(request.config)
    return scenario.out.parent, scenario.result()


@pytest.fixture(scope="session")
def gold_scenario(silver_scenario: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """Result of the gold scenario, run on the silver scenario's data folder."""
    data, _ = silver_scenario
    return Scenario("tests.integration.gold.gold_scenario", data).result()
