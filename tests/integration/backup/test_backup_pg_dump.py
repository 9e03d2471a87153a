"""A PostgreSQL MLflow store goes into the backup as a pg_dump (real server, real pg_dump)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from pyspark.sql import SparkSession

from lakehouse.backup import read_manifest, restore, take_backup
from lakehouse.backup.manifest import state_file
from lakehouse.settings import BackupSettings, Settings
from tests.conftest import REPO
from tests.support.postgres import Postgres, find_bindir

#: A PostgreSQL server and pg_dump on top of the backup: `make test-all`.
pytestmark = pytest.mark.slow


def test_postgres_mlflow_store_is_dumped_and_left_to_the_dba_on_restore(
    spark: SparkSession, postgres: Postgres, tmp_path: Path
) -> None:
    conninfo = f"host={postgres.host} port={postgres.port} user={postgres.user}"
    with psycopg.connect(f"{conninfo} dbname={postgres.database}", autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS backup_probe")
        db.execute("CREATE TABLE backup_probe (run_id text PRIMARY KEY)")
        db.execute("INSERT INTO backup_probe VALUES ('r1')")
    bindir = find_bindir()
    assert bindir is not None
    cfg = Settings(  # type: ignore[call-arg]
        home=REPO,
        data_dir=tmp_path / "data",
        mlflow={"backend_store_uri": postgres.sqlalchemy_url},  # type: ignore[arg-type]
        backup=BackupSettings(destination=tmp_path / "backups", pg_dump=bindir / "pg_dump"),  # type: ignore[call-arg]
    )
    report = take_backup(spark, cfg, tables=[])
    manifest = read_manifest(tmp_path / "backups", report.id)
    (item,) = [s for s in manifest.state if s.name == "mlflow-db"]
    assert item.kind == "pg_dump"
    (dump,) = item.files
    listing = subprocess.run(
        [
            str(bindir / "pg_restore"),
            "--list",
            str(state_file(tmp_path / "backups", item.name, dump)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TABLE public backup_probe" in listing
    assert "r1" not in item.source  # the recorded source is a file name, never the URL

    restored = restore(spark, cfg, backup_id=report.id)
    assert "mlflow-db" not in restored.state  # pg_restore is the DBA's step
