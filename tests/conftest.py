"""Shared fixtures: one Spark session per test run, on a temporary warehouse and catalog."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _test_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "home": REPO,
        "data_dir": data_dir,
        "spark": {
            "master": "local[2]",
            "shuffle_partitions": 2,
            "ui_enabled": False,
            "driver_memory": "2g",
            "log_level": "ERROR",
        },
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the test run: embedded Derby catalog and warehouse in a temp folder."""
    return _test_settings(tmp_path_factory.mktemp("lakehouse"))


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[object]:
    """The one Spark session of the test run (built by lakehouse.spark, as in production)."""
    from lakehouse.spark import build_spark

    session = build_spark(settings)
    yield session
    session.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for table names, so tests never share a table."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL server for the test run (tests/support/postgres.py)."""
    from tests.support.postgres import running_postgres

    # Not under pytest's 0700 root-owned temp tree: the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    try:
        with running_postgres(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real MLflow tracking server for the test run (SQLite backend, local artifacts, free
    loopback port); its ``.settings`` point clients (start_run, register_champion) at it."""
    import socket

    from lakehouse.tracking import TrackingServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cfg = _test_settings(tmp_path_factory.mktemp("mlflow"), mlflow={"port": port})
    with TrackingServer(cfg) as server:
        yield server


@pytest.fixture(scope="session")
def refdata() -> Path:
    """../shared/refdata, from LAKEHOUSE_REFDATA; tests that need it skip when unset."""
    value = os.environ.get("LAKEHOUSE_REFDATA")
    if not value or not Path(value).is_dir():
        pytest.skip("LAKEHOUSE_REFDATA is not set")
    return Path(value)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/integration and tests/e2e that take `spark` get the spark marker."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
