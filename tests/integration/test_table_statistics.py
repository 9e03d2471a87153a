"""Raw payloads carry no Delta statistics, also on tables created before the spec said so.

A bronze-shaped table is created as an older spec had it (payload untagged, Delta's default
statistics on every column), then ``ensure_table`` with the current spec sets
``delta.dataSkippingStatsColumns``; the next write lands its rows, its files' log entries
carry no statistics of the payload, and a filter on a key still skips files.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql.types import StringType

from lakehouse.settings import Settings
from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS, lineage_columns
from lakehouse.tables.registry import all_specs
from lakehouse.tables.spec import STATS_COLUMNS_PROPERTY, Phi, TableSpec, column
from lakehouse.tables.versions import snapshot_detail, table_layout
from lakehouse.tables.writer import append, ensure_table


def landing_spec(unique: str, *, payload_tagged: bool) -> TableSpec:
    payload = column(
        "payload",
        StringType(),
        "The record as delivered.",
        phi=Phi.RAW if payload_tagged else None,
    )
    return TableSpec(
        name=f"bronze.stats_{unique}",
        comment="Records of a test landing.",
        columns=(*lineage_columns(), payload),
        keys=RECORD_KEYS,
        cluster_by=BRONZE_CLUSTERING,
    )


def records(spark: SparkSession, spec: TableSpec, sha: str) -> Any:
    at = datetime(2026, 3, 1, 8, 0)
    rows = [
        (sha, i, "fhir", "H0002", f"/landing/{sha}.ndjson", "run", at, date(2026, 3, 1), p)
        for i, p in enumerate(['{"resourceType":"Patient"}', '{"resourceType":"Encounter"}'])
    ]
    return spark.createDataFrame(rows, spec.schema)


def last_commit_stats(settings: Settings, spec: TableSpec) -> list[dict[str, Any]]:
    """The statistics of the files the table's latest commit added (from its log entry)."""
    log = Path(settings.warehouse) / f"{spec.schema_name}.db" / spec.table_name / "_delta_log"
    commit = max(log.glob("*.json"))
    adds = [json.loads(line).get("add") for line in commit.read_text().splitlines()]
    return [json.loads(a["stats"]) for a in adds if a]


def files_read(spark: SparkSession, name: str, where: str) -> tuple[int, int]:
    """How many files a filtered scan of ``name`` read (after Delta's data skipping), and
    how many rows it returned."""
    df = spark.table(name).where(where)
    found = len(df.collect())
    plan = df._jdf.queryExecution().executedPlan()
    if plan.getClass().getSimpleName() == "AdaptiveSparkPlanExec":
        plan = plan.finalPhysicalPlan()
    leaves = plan.collectLeaves()
    files = sum(
        int(leaves.apply(i).metrics().apply("numFiles").value())
        for i in range(leaves.size())
        if leaves.apply(i).metrics().contains("numFiles")
    )
    return files, found


def test_an_existing_table_stops_gathering_payload_statistics(
    spark: SparkSession, settings: Settings, unique: str
) -> None:
    before = landing_spec(unique, payload_tagged=False)
    spec = landing_spec(unique, payload_tagged=True)
    assert ensure_table(spark, before).created
    assert STATS_COLUMNS_PROPERTY not in table_layout(spark, spec.name).properties
    append(spark, before, records(spark, before, "a" * 64), fresh_keys=True)
    assert all("payload" in s["minValues"] for s in last_commit_stats(settings, spec))

    report = ensure_table(spark, spec)
    assert STATS_COLUMNS_PROPERTY in report.properties_set
    listed = table_layout(spark, spec.name).properties[STATS_COLUMNS_PROPERTY]
    assert listed == spec.table_properties[STATS_COLUMNS_PROPERTY]
    assert "payload" not in listed.split(",")

    written = append(spark, spec, records(spark, spec, "b" * 64), fresh_keys=True)
    assert written.inserted == 2
    stats = last_commit_stats(settings, spec)
    assert stats
    for s in stats:
        assert "payload" not in s["minValues"]
        assert "payload" not in s["nullCount"]
        assert {"file_sha256", "record_index", "institution_code", "ingest_date"} <= set(
            s["minValues"]
        )
    # A key filter still skips the first delivery's files. A payload filter reads every
    # file: Delta reads statistics by the table's current list, so even the first files'
    # payload statistics (their range excludes '{}') are no longer used.
    detail = snapshot_detail(spark, spec.name)
    assert detail is not None
    total = detail["files"]
    assert total > len(stats)
    assert files_read(spark, spec.name, f"file_sha256 = '{'b' * 64}'") == (len(stats), 2)
    assert files_read(spark, spec.name, "payload = '{}'") == (total, 0)


def test_delta_accepts_every_spec_s_statistics_columns(spark: SparkSession, tmp_path: Path) -> None:
    """Delta validates the list when a table is created (types it keeps no min/max of,
    partition columns and clustering columns without statistics are refused)."""
    specs = [s for s in all_specs() if STATS_COLUMNS_PROPERTY in s.table_properties]
    assert specs
    for i, spec in enumerate(specs):
        builder = (
            DeltaTable.create(spark)
            .location(str(tmp_path / str(i)))
            .addColumns(spec.schema)
            .property(STATS_COLUMNS_PROPERTY, spec.table_properties[STATS_COLUMNS_PROPERTY])
        )
        if spec.cluster_by:
            builder = builder.clusterBy(*spec.cluster_by)
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        builder.execute()
