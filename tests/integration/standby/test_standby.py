"""Hot standby on real Spark + Delta (issue #12): ship, read the standby, fail over.

One table written by Spark three times (a delete writing deletion vectors, a checkpoint
every two commits) under a temporary warehouse. The shipper runs with one data file hidden: it ships
the versions before it and stops there, never exposing the version whose file is missing;
a new shipper (a restart) ships the rest. The standby, read by Spark as ``delta.`path```,
equals the primary at every version (row count and order-independent checksum, one Spark
job for all versions); a torn commit and a killed writer's temporary commit are never
shipped; failover registers the table and a promoted standby takes no more shipping.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings, StandbySettings
from lakehouse.standby import Shipper, read_status, render_metrics
from lakehouse.standby.failover import check_table, failover
from lakehouse.standby.ship import commit_name, parse_commit
from lakehouse.tables.versions import latest_version
from tests.conftest import REPO

VERSIONS = 3  # 0 create as select, 1 insert, 2 delete (deletion vectors)


def fingerprints(
    spark: SparkSession, tables: dict[str, Path], versions: int, *, only: list[int] | None = None
) -> dict[str, tuple[int, str]]:
    """(rows, checksum) of every (site, version) in one Spark job: the sum of xxhash64 over
    all columns as an exact decimal (lakehouse.backup.table_fingerprint's formula). A
    version without rows has no entry."""
    parts: list[DataFrame] = []
    for site, path in tables.items():
        for v in only if only is not None else range(versions):
            df = spark.read.format("delta").option("versionAsOf", v).load(str(path))
            parts.append(
                df.select(
                    F.lit(f"{site}@{v}").alias("k"),
                    F.xxhash64(*[F.col(c) for c in df.columns]).cast("decimal(38,0)").alias("h"),
                )
            )
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p)
    rows = union.groupBy("k").agg(F.count(F.lit(1)).alias("n"), F.sum("h").alias("s")).collect()
    return {r["k"]: (int(r["n"]), str(r["s"])) for r in rows}


def standby_site(
    settings: Settings, tmp_path: Path, prefix: str
) -> tuple[Settings, str, Path, Path]:
    """Settings of a primary warehouse and its standby under ``tmp_path`` shipping one new
    schema; the name of its ``events`` table and that table's folder on either site."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    cfg = Settings(  # type: ignore[call-arg]
        home=REPO,
        data_dir=tmp_path / "primary",
        warehouse_uri=str(tmp_path / "primary" / "warehouse"),
        spark=settings.spark,
        standby=StandbySettings(target=tmp_path / "standby", include=[f"{schema}.*"]),  # type: ignore[call-arg]
    )
    folder = Path("warehouse") / f"{schema}.db" / "events"
    return cfg, f"{schema}.events", tmp_path / "primary" / folder, tmp_path / "standby" / folder


def test_standby_ships_complete_versions_and_fails_over(
    spark: SparkSession, settings: Settings, tmp_path: Path
) -> None:
    cfg, name, primary, standby = standby_site(settings, tmp_path, "stb")
    at = f"delta.`{primary}`"
    spark.sql(
        f"CREATE TABLE {at} USING DELTA TBLPROPERTIES ('delta.enableDeletionVectors'='true', "
        "'delta.checkpointInterval'='2') AS SELECT * FROM VALUES (1, 'ICU'), (2, 'ward 3A'), "
        "(3, 'ER'), (4, 'ICU') AS t(id, ward)"
    )
    spark.sql(f"INSERT INTO {at} VALUES (5, 'ER'), (6, 'ward 3A')")
    spark.sql(f"DELETE FROM {at} WHERE id IN (2, 5)")
    log = primary / "_delta_log"
    assert (log / commit_name(VERSIONS - 1)).exists()

    # Hide the data file of version 1: version 0 ships, version 1 is not exposed.
    add = next(a["add"] for a in parse_commit((log / commit_name(1)).read_bytes()) if "add" in a)
    hidden = primary / add["path"]
    hidden.rename(tmp_path / "hidden.parquet")
    # A writer killed mid-commit leaves a temporary commit; Delta never reads it.
    (log / f".{commit_name(VERSIONS)}.{uuid.uuid4()}.tmp").write_text('{"add":{"path":"x.par')
    with Shipper(cfg) as shipper:
        report = shipper.cycle()
    assert report.versions == 1
    assert report.errors == [name]
    status = read_status(cfg)
    assert status is not None
    table = status["tables"][name]
    assert table["standby_version"] == 0
    assert table["error"]["code"] == ErrorCode.STANDBY_FILE_MISSING.value.id
    assert sorted(p.name for p in (standby / "_delta_log").glob("*.json")) == [commit_name(0)]
    assert 'lakehouse_standby_table_error{table="' + name + '"} 1' in render_metrics(status)

    # A torn commit 3 (a store without atomic rename) is not shipped either.
    hidden_back = tmp_path / "hidden.parquet"
    hidden_back.rename(hidden)
    torn = log / commit_name(VERSIONS)
    torn.write_text('{"commitInfo":{"timestamp":1}}\n{"add":{"path":"part-x.parq')
    with Shipper(cfg) as shipper:  # a restart: resumes after the standby's version 0
        report = shipper.cycle()
        assert report.versions == VERSIONS - 1
        torn_error = shipper.tables[name].error
        assert torn_error is not None
        assert torn_error["code"] == ErrorCode.STANDBY_COMMIT_UNREADABLE.value.id
        torn.unlink()
        shipper.cycle()
        assert shipper.tables[name].error is None
        assert shipper.tables[name].standby_version == VERSIONS - 1
        lag = shipper.status()["lag"]
    assert lag["samples"] == VERSIONS - 1  # this shipper shipped versions 1 and 2
    assert not (standby / "_delta_log" / commit_name(VERSIONS)).exists()
    # Checkpoints and _last_checkpoint follow their commits.
    assert (standby / "_delta_log" / f"{2:020d}.checkpoint.parquet").exists()
    pointer = json.loads((standby / "_delta_log" / "_last_checkpoint").read_text())
    assert pointer["version"] == 2
    prom = render_metrics(read_status(cfg))
    assert f'lakehouse_standby_version{{table="{name}",site="standby"}} {VERSIONS - 1}' in prom
    assert f"lakehouse_standby_ship_lag_seconds_count {VERSIONS - 1}" in prom

    got = fingerprints(spark, {"p": primary, "s": standby}, VERSIONS)
    assert [got[f"s@{v}"][0] for v in range(VERSIONS)] == [4, 6, 4]  # the rows written
    for v in range(VERSIONS):
        assert got[f"p@{v}"] == got[f"s@{v}"], v

    check = check_table(name, standby)
    assert (check.first_version, check.last_version) == (0, VERSIONS - 1)
    report_f = failover(spark, cfg, wait_s=0)
    assert [t.name for t in report_f.tables] == [name]
    assert latest_version(spark, name) == VERSIONS - 1
    assert spark.table(name).count() == 4
    with pytest.raises(LakehouseError) as caught:
        Shipper(cfg).open()
    assert caught.value.code is ErrorCode.STANDBY_PROMOTED
    spark.sql(f"DROP TABLE {name}")  # external: the standby's files stay
    assert (standby / "_delta_log" / commit_name(0)).exists()
    shutil.rmtree(tmp_path / "standby", ignore_errors=True)
