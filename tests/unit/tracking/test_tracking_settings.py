"""MLflow settings: defaults under data_dir, the backend store by environment, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings, load_settings
from lakehouse.tracking import TrackingServer, backend_store_uri, redact_uri, tracking_uri
from lakehouse.tracking.client import champion_uri, server_url
from lakehouse.tracking.server import artifacts_destination

PG = "postgresql+psycopg://mlflow:p%40ss-w0rd@db.hospital.local:5432/mlflow"


def test_defaults_live_under_the_data_dir(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path)
    assert backend_store_uri(cfg) == f"sqlite:///{tmp_path}/var/mlflow/mlflow.db"
    assert artifacts_destination(cfg) == str(tmp_path / "var" / "mlflow" / "artifacts")
    assert tracking_uri(cfg) == "http://127.0.0.1:5000"
    assert cfg.mlflow.workers == 1


def test_postgres_backend_and_shared_artifacts_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__BACKEND_STORE_URI", PG)
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__ARTIFACTS_DESTINATION", "s3://models/mlflow")
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__HOST", "0.0.0.0")
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__ALLOWED_HOSTS", '["mlflow.hospital.local"]')
    cfg = load_settings()
    assert backend_store_uri(cfg) == PG
    assert artifacts_destination(cfg) == "s3://models/mlflow"
    assert "p%40ss-w0rd" not in cfg.model_dump_json()
    # A wildcard bind is reached on loopback by the clients on the same machine.
    assert tracking_uri(cfg) == "http://127.0.0.1:5000"

    server = TrackingServer(cfg)
    command = server.command()
    assert not any("p%40ss-w0rd" in part for part in command)  # `ps` shows the command line
    assert command[command.index("--allowed-hosts") + 1] == "mlflow.hospital.local"
    assert command[command.index("--workers") + 1] == "1"
    assert server.backend == "postgresql+psycopg://mlflow:***@db.hospital.local:5432/mlflow"
    env = cfg.mlflow.server_environment(backend_store_uri(cfg))
    assert env["MLFLOW_BACKEND_STORE_URI"] == PG


def test_an_external_server_for_clients(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__TRACKING_URI", "https://mlflow.hospital.local")
    assert tracking_uri(load_settings(home=tmp_path)) == "https://mlflow.hospital.local"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (PG, "postgresql+psycopg://mlflow:***@db.hospital.local:5432/mlflow"),
        (
            "postgresql+psycopg://u:pw@[::1]:5433/m?sslmode=require",
            "postgresql+psycopg://u:***@[::1]:5433/m?sslmode=require",
        ),
        ("postgresql+psycopg://u:pw@db/m", "postgresql+psycopg://u:***@db/m"),
        ("postgresql+psycopg://u@db/m", "postgresql+psycopg://u@db/m"),
        ("sqlite:////var/lib/mlflow/mlflow.db", "sqlite:////var/lib/mlflow/mlflow.db"),
        ("s3://bucket/mlflow", "s3://bucket/mlflow"),
        ("/srv/mlflow/artifacts", "/srv/mlflow/artifacts"),
    ],
)
def test_redact_uri_hides_only_the_password(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://u:pw@db/mlflow",  # psycopg2, not locked
        "mysql://u:pw@db/mlflow",
        "sqlite:///relative/mlflow.db",
        "file:///srv/mlruns",
    ],
)
def test_unsupported_backend_stores_are_refused(uri: str, tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path, mlflow={"backend_store_uri": uri})  # type: ignore[arg-type]
    with pytest.raises(LakehouseError) as caught:
        backend_store_uri(cfg)
    assert caught.value.code is ErrorCode.MLFLOW_SETTINGS_INVALID
    assert "pw" not in str(caught.value).replace("postgresql", "")


def test_relative_artifacts_destination_is_under_the_data_dir(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path, mlflow={"artifacts_destination": "models"})  # type: ignore[arg-type]
    assert artifacts_destination(cfg) == str(tmp_path / "var" / "models")


def test_server_url_brackets_ipv6_and_champion_uri(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path, mlflow={"host": "::", "port": 5001})  # type: ignore[arg-type]
    assert server_url(cfg) == "http://[::1]:5001"
    assert champion_uri("readmission") == "models:/readmission@champion"
