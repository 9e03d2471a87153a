"""Backup, wipe, restore on real Spark + Delta + Hive metastore (issue #12's acceptance).

Two small tables (one with several versions and a DELETE that writes deletion vectors, one
partitioned on a value that needs URL encoding), a full backup, more writes, an incremental
backup; then the tables' folders and metastore entries and the local MLflow state are wiped
and restored, and each table must equal its source at the pinned version by row count and
order-independent checksum. Only this module's tables are backed up: the session's catalog
holds other tests' tables.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import IntegerType, StringType

from lakehouse.backup import list_manifests, restore, table_fingerprint, take_backup
from lakehouse.backup.delta_log import snapshot
from lakehouse.backup.manifest import table_file
from lakehouse.backup.take import destination, local_path
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings
from lakehouse.tables.spec import TableSpec, column
from lakehouse.tables.versions import require_version
from lakehouse.tables.writer import append, upsert
from tests.conftest import REPO

KEY = column("id", StringType(), "Row id.", nullable=False)
VALUE = column("value", IntegerType(), "A number.")
WARD = column("ward", StringType(), "Ward name (a partition value with a space).")


@dataclass
class Scenario:
    cfg: Settings
    tables: list[str]
    first: str  # id of the full backup
    second: str  # id of the incremental backup
    pinned: dict[str, dict[str, tuple[int, int, str]]]  # backup id -> table -> (version, rows, sum)
    artifact: Path
    mlflow_db: Path


def _fingerprints(spark: SparkSession, tables: list[str]) -> dict[str, tuple[int, int, str]]:
    return {t: (require_version(spark, t), *table_fingerprint(spark.table(t))) for t in tables}


@pytest.fixture(scope="module")
def scenario(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Scenario:
    import uuid

    u = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("backup")
    cfg = Settings(  # type: ignore[call-arg]
        home=REPO,
        data_dir=root / "data",  # local state apart from the session's (other tests use it)
        warehouse_uri=settings.warehouse,
        spark=settings.spark,
        backup={"destination": str(root / "backups")},
    )
    a = TableSpec(
        name=f"silver.bk_a_{u}",
        columns=(KEY, VALUE),
        comment="Backup test: versions and deletion vectors.",
        keys=("id",),
        properties={"delta.enableDeletionVectors": "true"},
    )
    b = TableSpec(
        name=f"gold.bk_b_{u}",
        columns=(KEY, VALUE, WARD),
        comment="Backup test: partitioned, appended.",
        partition_by=("ward",),
        append_only=True,
    )
    for i in range(3):  # versions 0 (create) to 3
        rows = [(f"k{j}", j * 10 + i) for j in range(i * 5, i * 5 + 8)]
        upsert(spark, a, spark.createDataFrame(rows, a.schema))
    append(spark, b, spark.createDataFrame([("x1", 1, "ward 3A"), ("x2", 2, "ICU")], b.schema))
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
    pinned: dict[str, dict[str, tuple[int, int, str]]] = {}
    before = _fingerprints(spark, tables)
    first = take_backup(spark, cfg, tables=tables)
    pinned[first.id] = before

    spark.sql(f"DELETE FROM {a.name} WHERE id IN ('k1', 'k2')")  # deletion vectors
    upsert(spark, a, spark.createDataFrame([("k1", 99), ("z9", 7)], a.schema))
    append(spark, b, spark.createDataFrame([("x3", 3, "ward 3A")], b.schema))
    with sqlite3.connect(mlflow_db) as db:
        db.execute("INSERT INTO runs VALUES ('r2', 'los')")
    before = _fingerprints(spark, tables)
    second = take_backup(spark, cfg, tables=tables, incremental=True)
    pinned[second.id] = before
    assert second.kind == "incremental"
    assert second.files_reused > 0
    return Scenario(cfg, tables, first.id, second.id, pinned, artifact, mlflow_db)


def test_incremental_copies_only_new_files_and_keeps_deletion_vectors(
    spark: SparkSession, scenario: Scenario
) -> None:
    dest = destination(scenario.cfg)
    manifests = {m.id: m for m in list_manifests(dest)}
    full, incr = manifests[scenario.first], manifests[scenario.second]
    assert incr.parent == full.id
    a = incr.table(scenario.tables[0])
    assert a is not None
    own = [f for f in a.files if f.stored_in == incr.id]
    inherited = [f for f in a.files if f.stored_in == full.id]
    assert own
    assert inherited
    assert not any(
        f.path.startswith("part-") and f.stored_in == incr.id for f in full.tables[0].files
    )
    dvs = [f.path for f in a.files if f.path.startswith("deletion_vector_")]
    assert dvs, "the DELETE wrote deletion vectors and the backup holds them"
    snap = snapshot(local_path(a.location, table=a.name), a.version, table=a.name)
    assert set(snap.dv_files) == set(dvs)
    b = incr.table(scenario.tables[1])
    assert b is not None
    assert any(f.path.startswith("ward=ward 3A/") for f in b.files)


def test_wipe_and_restore_gives_every_table_at_its_pinned_version(
    spark: SparkSession, scenario: Scenario
) -> None:
    for name in scenario.tables:
        folder = local_path(
            str(spark.sql(f"DESCRIBE DETAIL {name}").first()["location"]),  # type: ignore[index]
            table=name,
        )
        spark.sql(f"DROP TABLE {name}")
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(scenario.cfg.data_dir / "mlflow")

    report = restore(spark, scenario.cfg, tables=scenario.tables)
    assert report.backup_id == scenario.second
    assert _fingerprints(spark, scenario.tables) == scenario.pinned[scenario.second]
    assert "mlflow-db" in report.state
    assert "mlflow-artifacts" in report.state
    with sqlite3.connect(scenario.mlflow_db) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    assert scenario.artifact.read_text() == "flavors: {}\n"

    # An earlier backup gives the earlier versions; running it twice gives the same.
    for _ in range(2):
        restore(spark, scenario.cfg, backup_id=scenario.first, tables=scenario.tables)
        assert _fingerprints(spark, scenario.tables) == scenario.pinned[scenario.first]
    with sqlite3.connect(scenario.mlflow_db) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    # The restored table takes writes again.
    name = scenario.tables[0]
    upsert(spark, _spec_of(name), spark.createDataFrame([("new", 1)], "id string, value int"))
    assert spark.table(name).where("id = 'new'").count() == 1


def _spec_of(name: str) -> TableSpec:
    return TableSpec(
        name=name,
        columns=(KEY, VALUE),
        comment="Backup test: versions and deletion vectors.",
        keys=("id",),
        properties={"delta.enableDeletionVectors": "true"},
    )


def test_corrupt_backup_file_is_refused_before_anything_is_overwritten(
    spark: SparkSession, scenario: Scenario
) -> None:
    restore(spark, scenario.cfg, backup_id=scenario.first, tables=scenario.tables)
    dest = destination(scenario.cfg)
    incr = next(m for m in list_manifests(dest) if m.id == scenario.second)
    entry = incr.table(scenario.tables[0])
    assert entry is not None
    victim = next(f for f in entry.files if f.stored_in == incr.id and f.path.endswith(".parquet"))
    path = table_file(dest, entry.name, victim)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    try:
        with pytest.raises(LakehouseError) as caught:
            restore(spark, scenario.cfg, backup_id=scenario.second, tables=scenario.tables)
        assert caught.value.code is ErrorCode.BACKUP_CORRUPT
        assert _fingerprints(spark, scenario.tables) == scenario.pinned[scenario.first]
    finally:
        path.write_bytes(data)


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
