"""Backup, wipe, restore on real Spark + Delta + Hive metastore (issue #12's acceptance).

Two small tables (one with several versions and a DELETE that writes deletion vectors, one
partitioned on a value that needs URL encoding), a full backup, more writes, an incremental
backup; then the tables' folders and metastore entries and the local MLflow state are wiped
and restored. Each restored table must be its source at the pinned version: the version and
the order-independent checksum of the manifest, and the rows the test itself wrote (a
Python oracle). Only this module's tables are backed up: the session's catalog holds other
tests' tables.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import IntegerType, StringType

from lakehouse.backup import (
    choose_backup,
    list_manifests,
    restore,
    table_fingerprint,
    take_backup,
)
from lakehouse.backup.delta_log import snapshot
from lakehouse.backup.manifest import Manifest, table_file
from lakehouse.backup.take import destination, local_path
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import BackupSettings, Settings
from lakehouse.tables.spec import TableSpec, column
from lakehouse.tables.versions import require_version
from lakehouse.tables.writer import ensure_tables
from tests.conftest import REPO

#: Six Delta writes, two backups and three restores (100-200 s on the shared 2-core
#: machine): `make test-all`.
pytestmark = pytest.mark.slow

KEY = column("id", StringType(), "Row id.", nullable=False)
VALUE = column("value", IntegerType(), "A number.")
WARD = column("ward", StringType(), "Ward name (a partition value with a space).")

Rows = list[tuple[object, ...]]


@dataclass
class Scenario:
    cfg: Settings
    tables: list[str]
    first: Manifest  # the full backup
    second: Manifest  # the incremental backup
    rows: dict[str, dict[str, Rows]]  # backup id -> table -> the rows written up to its pin
    artifact: Path
    mlflow_db: Path


def _insert(spark: SparkSession, table: str, rows: Rows) -> None:
    values = ", ".join("(" + ", ".join(repr(v) for v in row) + ")" for row in rows)
    spark.sql(f"INSERT INTO {table} VALUES {values}")


@pytest.fixture(scope="module")
def scenario(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Scenario:
    u = uuid.uuid4().hex[:10]  # the `unique` fixture is per test; this scenario is per module
    root = tmp_path_factory.mktemp("backup")
    cfg = Settings(  # type: ignore[call-arg]
        home=REPO,
        data_dir=root / "data",  # local state apart from the session's (other tests use it)
        warehouse_uri=settings.warehouse,
        spark=settings.spark,
        backup=BackupSettings(destination=root / "backups"),  # type: ignore[call-arg]
    )
    a = TableSpec(
        name=f"silver.bk_a_{u}",
        columns=(KEY, VALUE),
        comment="Backup test: versions and deletion vectors.",
        keys=("id",),
        # A checkpoint every 2 commits: the log reader replays checkpoint + later commits.
        properties={"delta.enableDeletionVectors": "true", "delta.checkpointInterval": "2"},
    )
    b = TableSpec(
        name=f"gold.bk_b_{u}",
        columns=(KEY, VALUE, WARD),
        comment="Backup test: partitioned, appended.",
        partition_by=("ward",),
        append_only=True,
    )
    ensure_tables(spark, [a, b], parallelism=1)  # version 0
    a_rows: Rows = []
    for i in range(2):  # versions 1 and 2
        batch: Rows = [(f"k{j}", j * 10 + i) for j in range(i * 5, i * 5 + 8)]
        _insert(spark, a.name, batch)
        a_rows += batch
    b_rows: Rows = [("x1", 1, "ward 3A"), ("x2", 2, "ICU")]
    _insert(spark, b.name, b_rows)  # version 1
    # Local MLflow state: a SQLite store with a table, one artifact.
    mlflow_db = cfg.data_dir / "mlflow" / "mlflow.db"
    mlflow_db.parent.mkdir(parents=True)
    with sqlite3.connect(mlflow_db) as db:
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO runs VALUES ('r1', 'readmission')")
    artifact = cfg.data_dir / "mlflow" / "artifacts" / "1" / "r1" / "model" / "MLmodel"
    artifact.parent.mkdir(parents=True)
    artifact.write_text("flavors: {}\n")

    tables = [a.name, b.name]
    first = take_backup(spark, cfg, tables=tables)
    rows = {first.id: {a.name: list(a_rows), b.name: list(b_rows)}}

    spark.sql(f"DELETE FROM {a.name} WHERE id IN ('k1', 'k2')")  # version 3: deletion vectors
    spark.sql(f"UPDATE {a.name} SET value = 99 WHERE id = 'k3'")  # version 4
    _insert(spark, b.name, [("x3", 3, "ward 3A")])  # version 2
    a_rows = [(k, 99 if k == "k3" else v) for k, v in a_rows if k not in ("k1", "k2")]
    b_rows += [("x3", 3, "ward 3A")]
    with sqlite3.connect(mlflow_db) as db:
        db.execute("INSERT INTO runs VALUES ('r2', 'los')")
    second = take_backup(spark, cfg, tables=tables, incremental=True)
    rows[second.id] = {a.name: a_rows, b.name: b_rows}
    assert second.kind == "incremental"
    assert second.files_reused > 0
    manifests = {m.id: m for m in list_manifests(destination(cfg))}
    return Scenario(
        cfg, tables, manifests[first.id], manifests[second.id], rows, artifact, mlflow_db
    )


def _assert_restored(spark: SparkSession, scenario: Scenario, manifest: Manifest) -> None:
    for entry in manifest.tables:
        assert require_version(spark, entry.name) == entry.version
        assert table_fingerprint(spark.table(entry.name)) == (entry.rows, entry.checksum)
        got = sorted(tuple(r) for r in spark.table(entry.name).collect())  # a few rows
        assert got == sorted(scenario.rows[manifest.id][entry.name])


def test_incremental_copies_only_new_files_and_keeps_deletion_vectors(
    scenario: Scenario,
) -> None:
    full, incr = scenario.first, scenario.second
    assert incr.parent == full.id
    assert [t.version for t in full.tables] == [2, 1]
    assert [t.version for t in incr.tables] == [4, 2]
    a = incr.table(scenario.tables[0])
    assert a is not None
    assert {f.stored_in for f in a.files} == {full.id, incr.id}
    dvs = [f.path for f in a.files if f.path.startswith("deletion_vector_")]
    assert dvs, "the DELETE wrote deletion vectors and the backup holds them"
    snap = snapshot(local_path(a.location, table=a.name), a.version, table=a.name)
    assert set(snap.dv_files) == set(dvs)
    logs = sorted(f.path for f in a.files if f.path.startswith("_delta_log/"))
    assert any(p.endswith(".checkpoint.parquet") for p in logs)
    assert f"_delta_log/{0:020d}.json" not in logs  # before the checkpoint: not needed
    b = incr.table(scenario.tables[1])
    assert b is not None
    assert any(f.path.startswith("ward=ward 3A/") for f in b.files)
    # --to picks the newest backup taken at or before the time.
    assert choose_backup(scenario.cfg, to=full.created_at).id == full.id
    assert choose_backup(scenario.cfg, to=incr.created_at).id == incr.id
    with pytest.raises(LakehouseError) as caught:
        choose_backup(scenario.cfg, to="2000-01-01T00:00")
    assert caught.value.code is ErrorCode.BACKUP_NOT_FOUND


def test_wipe_and_restore_gives_every_table_at_its_pinned_version(
    spark: SparkSession, scenario: Scenario
) -> None:
    for name in scenario.tables:
        detail = spark.sql(f"DESCRIBE DETAIL {name}").first()
        assert detail is not None
        spark.sql(f"DROP TABLE {name}")
        shutil.rmtree(local_path(str(detail["location"]), table=name), ignore_errors=True)
    shutil.rmtree(scenario.cfg.data_dir / "mlflow")

    report = restore(spark, scenario.cfg, tables=scenario.tables)
    assert report.backup_id == scenario.second.id
    _assert_restored(spark, scenario, scenario.second)
    assert "mlflow-db" in report.state
    assert "mlflow-artifacts" in report.state
    with sqlite3.connect(scenario.mlflow_db) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    assert scenario.artifact.read_text() == "flavors: {}\n"

    # The earlier backup gives the earlier versions (and the earlier MLflow store).
    restore(spark, scenario.cfg, backup_id=scenario.first.id, tables=scenario.tables)
    _assert_restored(spark, scenario, scenario.first)
    with sqlite3.connect(scenario.mlflow_db) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_restore_again_is_idempotent_and_a_corrupt_file_is_refused_first(
    spark: SparkSession, scenario: Scenario
) -> None:
    restore(spark, scenario.cfg, backup_id=scenario.first.id, tables=scenario.tables)
    _assert_restored(spark, scenario, scenario.first)

    dest = destination(scenario.cfg)
    entry = scenario.second.table(scenario.tables[0])
    assert entry is not None
    victim = next(
        f for f in entry.files if f.stored_in == scenario.second.id and f.path.endswith(".parquet")
    )
    path = table_file(dest, entry.name, victim)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    try:
        with pytest.raises(LakehouseError) as caught:
            restore(spark, scenario.cfg, backup_id=scenario.second.id, tables=scenario.tables)
        assert caught.value.code is ErrorCode.BACKUP_CORRUPT
        _assert_restored(spark, scenario, scenario.first)  # nothing was overwritten
    finally:
        path.write_bytes(data)

    # The restored table takes writes again.
    spark.sql(f"INSERT INTO {entry.name} VALUES ('new', 1)")
    assert spark.table(entry.name).where("id = 'new'").count() == 1


def test_retention_shorter_than_the_interval_fails_before_copying(
    spark: SparkSession, scenario: Scenario
) -> None:
    cfg = scenario.cfg.model_copy(
        update={"backup": scenario.cfg.backup.model_copy(update={"interval_hours": 200.0})}
    )
    count = len(list_manifests(destination(cfg)))
    with pytest.raises(LakehouseError) as caught:
        take_backup(spark, cfg, tables=scenario.tables, include_state=False)
    assert caught.value.code is ErrorCode.BACKUP_RETENTION_TOO_SHORT
    assert len(list_manifests(destination(cfg))) == count
    assert not any(p.name.endswith(".partial") for p in destination(cfg).iterdir())


def test_an_unknown_table_is_refused_before_copying(
    spark: SparkSession, scenario: Scenario
) -> None:
    with pytest.raises(LakehouseError) as caught:
        take_backup(spark, scenario.cfg, tables=["silver.no_such_table"], include_state=False)
    assert caught.value.code is ErrorCode.TABLE_NOT_FOUND


def test_incremental_without_a_previous_backup_is_refused(
    spark: SparkSession, scenario: Scenario, tmp_path: Path
) -> None:
    cfg = scenario.cfg.model_copy(
        update={"backup": scenario.cfg.backup.model_copy(update={"destination": tmp_path})}
    )
    with pytest.raises(LakehouseError) as caught:
        take_backup(spark, cfg, tables=scenario.tables, incremental=True)
    assert caught.value.code is ErrorCode.BACKUP_NO_PARENT
