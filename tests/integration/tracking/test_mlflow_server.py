"""The project's MLflow tracking server, for real: runs, a pyfunc model, the registry and its
``champion`` alias on SQLite (the shared ``mlflow_server``) and on PostgreSQL; clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings
from lakehouse.tracking import (
    TrackingServer,
    champion_uri,
    data_versions,
    log_data_versions,
    ping,
    register_champion,
    require_server,
    start_run,
    tracking_uri,
)
from lakehouse.tracking.client import GIT_COMMIT_TAG, VERSION_TAG
from lakehouse_cli.main import main as cli
from tests.conftest import _test_settings
from tests.support.postgres import Postgres
from tests.support.processes import REPO, lakehouse_env

mlflow = pytest.importorskip("mlflow")
pyfunc = pytest.importorskip("mlflow.pyfunc")


class RiskScore(pyfunc.PythonModel):  # type: ignore[misc]
    """A tiny pure-Python model: risk = weight * age / 100 + 0.1 * prior admissions."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return self.weight * model_input["age"] / 100 + 0.1 * model_input["admissions"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def _log_model(cfg: Settings, experiment: str, weight: float) -> str:
    """One run with params, metrics, lineage and a pyfunc model; its run id."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({"age": [70.0, 40.0], "admissions": [2.0, 0.0]})
    model = RiskScore(weight)
    signature = infer_signature(example, model.predict(None, example))
    with start_run(cfg, experiment, run_name=f"w{weight}", tags={"task": "readmission"}) as run:
        mlflow.log_params({"weight": weight, "features": "age,admissions"})
        mlflow.log_metrics({"auroc": 0.5 + weight / 10, "auprc": 0.3})
        log_data_versions(run, {"gold.person_features": 7, "gold.visit_labels": 3})
        mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=signature,
            input_example=example,
            pip_requirements=[f"mlflow=={mlflow.__version__}", "pandas"],
        )
        return str(run.info.run_id)


def test_run_model_registry_and_champion_round_trip(mlflow_server: TrackingServer) -> None:
    cfg = mlflow_server.settings
    experiment, name = f"readmission-{uuid.uuid4().hex[:8]}", f"risk-{uuid.uuid4().hex[:8]}"

    first = _log_model(cfg, experiment, weight=1.0)
    assert register_champion(cfg, name, first, "model") == 1
    second = _log_model(cfg, experiment, weight=2.0)
    assert register_champion(cfg, name, second, "model") == 2

    client = mlflow.MlflowClient(tracking_uri=require_server(cfg))
    run = client.get_run(first)
    assert run.data.params == {"weight": "1.0", "features": "age,admissions"}
    assert run.data.metrics == {"auroc": pytest.approx(0.6), "auprc": pytest.approx(0.3)}
    assert run.data.tags["task"] == "readmission"
    assert run.data.tags[VERSION_TAG]
    assert len(run.data.tags[GIT_COMMIT_TAG]) == 40  # the test runs in the repository
    assert data_versions(cfg, first) == {"gold.person_features": 7, "gold.visit_labels": 3}

    # The alias moved to the second version; loading by alias gets the second model.
    champion = client.get_model_version_by_alias(name, "champion")
    assert (champion.version, champion.run_id) == ("2", second)
    loaded = mlflow.pyfunc.load_model(champion_uri(name))
    assert loaded.metadata.signature is not None
    scores = loaded.predict(pd.DataFrame({"age": [50.0], "admissions": [1.0]}))
    assert list(scores) == pytest.approx([2.0 * 0.5 + 0.1])
    # Artifacts are proxied: the server wrote them under its artifacts destination.
    assert any((cfg.data_dir / "mlflow" / "artifacts").rglob("MLmodel"))


def test_registry_refusal_is_catalogued(mlflow_server: TrackingServer) -> None:
    with pytest.raises(LakehouseError) as caught:
        register_champion(mlflow_server.settings, "no-such-model", uuid.uuid4().hex, "model")
    assert caught.value.code is ErrorCode.MLFLOW_REGISTRY_FAILED


def test_second_server_on_a_busy_port_is_refused(mlflow_server: TrackingServer) -> None:
    with pytest.raises(LakehouseError) as caught:
        TrackingServer(mlflow_server.settings).start()
    assert caught.value.code is ErrorCode.MLFLOW_ALREADY_RUNNING


def test_client_without_a_server_gets_a_catalogued_error(tmp_path: Path) -> None:
    cfg = _test_settings(tmp_path, mlflow={"port": _free_port()})
    with pytest.raises(LakehouseError) as caught:
        start_run(cfg, "nowhere")
    assert caught.value.code is ErrorCode.MLFLOW_UNREACHABLE


def test_status_command(mlflow_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__TRACKING_URI", mlflow_server.url)
    assert cli(["mlflow", "status"]) == 0
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    assert cli(["mlflow", "status"]) == 69


def test_unreachable_postgres_backend_is_refused_before_start(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://mlflow:s3cret-pw@127.0.0.1:{_free_port()}/mlflow"
    server = TrackingServer(
        _test_settings(tmp_path, mlflow={"backend_store_uri": url, "port": _free_port()})
    )
    with pytest.raises(LakehouseError) as caught:
        server.start()
    assert caught.value.code is ErrorCode.MLFLOW_BACKEND_UNREACHABLE
    assert "s3cret-pw" not in str(caught.value)
    assert "mlflow:***@127.0.0.1" in str(caught.value)
    assert server.pid is None


@pytest.fixture
def mlflow_database(postgres: Postgres) -> str:
    """A database of its own on the test run's PostgreSQL server (MLflow creates ~30 tables)."""
    database = f"mlflow_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return postgres.sqlalchemy_url.rsplit("/", 1)[0] + f"/{database}"


@pytest.mark.slow  # a second server start (20-40 s) on PostgreSQL: `make test-all`
def test_serve_on_postgres_and_sigterm_leaves_no_process(
    tmp_path: Path, mlflow_database: str
) -> None:
    """`lakehouse mlflow serve` as systemd runs it: PostgreSQL backend, stopped by SIGTERM."""
    port = _free_port()
    # The test server trusts local users; the password is there to check it is never shown.
    user, rest = mlflow_database.split("://", 1)[1].split("@", 1)
    backend = f"postgresql+psycopg://{user}:s3cret-pw@{rest}"
    env = lakehouse_env(tmp_path, MLFLOW__BACKEND_STORE_URI=backend, MLFLOW__PORT=str(port))
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "lakehouse_cli.main", "mlflow", "serve"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    cfg = _test_settings(tmp_path, mlflow={"port": port})
    url = tracking_uri(cfg)
    try:
        deadline = time.monotonic() + 300
        while not ping(url):
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the server did not answer in 300 s"
            time.sleep(0.5)
        groups = {os.getpgid(pid) for pid in _processes_mentioning(str(tmp_path))}
        assert len(groups) == 1
        assert os.getpgid(serve.pid) not in groups  # the server has a process group of its own
        assert _processes_mentioning("s3cret-pw") == []  # not on any command line
        assert len(_group_members(next(iter(groups)))) >= 2  # `mlflow server` and uvicorn

        with start_run(cfg, f"pg-{uuid.uuid4().hex[:8]}") as run:
            mlflow.log_metric("auroc", 0.71)
            log_data_versions(run, {"gold.person_features": 12})
        run_id = str(run.info.run_id)
        client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
        client.create_registered_model("pg-model")
        assert data_versions(cfg, run_id) == {"gold.person_features": 12}
    finally:
        serve.send_signal(signal.SIGTERM)
        status = serve.wait(timeout=120)
        log.close()
    assert status == 0, (tmp_path / "serve.log").read_text()[-2000:]

    # The run and the registered model are rows in PostgreSQL, not in a local file.
    engine = sa.create_engine(mlflow_database)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("select count(*) from runs where run_uuid = :r"), {"r": run_id})
        assert runs.scalar() == 1
        models = conn.execute(sa.text("select name from registered_models"))
        assert [row[0] for row in models] == ["pg-model"]
    engine.dispose()
    assert not (tmp_path / "mlflow" / "mlflow.db").exists()
    assert f"{user}:***@" in (tmp_path / "serve.log").read_text()
    for log_file in (tmp_path / "serve.log", tmp_path / "mlflow" / "server.log"):
        assert "s3cret-pw" not in log_file.read_text()

    # Stopped: no process of its group, none started for this data folder, the port is free.
    assert [_group_members(group) for group in groups] == [[]]
    assert _processes_mentioning(str(tmp_path)) == []
    assert not ping(url)
    with socket.socket() as s:  # nothing listens (closed connections may linger in TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_sigterm_while_starting_leaves_no_process(tmp_path: Path) -> None:
    """systemd stopping the unit before /health answered: start() stops what it started."""
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "lakehouse_cli.main", "mlflow", "serve"],
        cwd=REPO, env=lakehouse_env(tmp_path, MLFLOW__PORT=str(port)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _processes_mentioning(str(tmp_path)):  # `mlflow server` has been started
            assert serve.poll() is None
            assert time.monotonic() < deadline, "lakehouse mlflow serve started nothing"
            time.sleep(0.05)
        groups = {os.getpgid(pid) for pid in _processes_mentioning(str(tmp_path))}
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=120)
    assert [_group_members(group) for group in groups] == [[]]
    assert _processes_mentioning(str(tmp_path)) == []


def test_stop_twice_and_a_server_that_never_started(tmp_path: Path) -> None:
    server = TrackingServer(_test_settings(tmp_path, mlflow={"port": _free_port()}))
    assert server.pid is None
    assert server.stop() is False
