"""ensure_table and upsert on real Spark + Delta + Hive metastore.

The acceptance scenario of the foundation: the same input twice adds no duplicates, the
schema evolves, an older version is read by time travel, and a second Spark process reads
the table by name through the persistent catalog.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, TimestampType

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.tables import versions, writer
from lakehouse.tables.spec import Phi, TableSpec, column
from lakehouse.tables.writer import PHI_PROPERTY, append, ensure_table, latest_per_key, upsert
from tests.support.processes import lakehouse_env

PID = column("patient_id", StringType(), "Patient id at the source.", nullable=False)
SEQ = column("updated_at", TimestampType(), "When the source last changed the row.")
NAME = column("name", StringType(), "Patient name.", phi=Phi.NAME)
VISITS = column("visits", IntegerType(), "Number of visits.")


def people(unique: str, *extra: object, **kw: object) -> TableSpec:
    return TableSpec(
        name=f"silver.people_{unique}",
        columns=(PID, NAME, VISITS, SEQ, *extra),  # type: ignore[arg-type]
        comment="People for a test.",
        keys=("patient_id",),
        sequence_by="updated_at",
        cluster_by=("patient_id",),
        **kw,  # type: ignore[arg-type]
    )


def rows(spark: SparkSession, spec: TableSpec, data: list[tuple[object, ...]]):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(data, spec.schema)


T0, T1, T2 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)


def test_upsert_twice_is_idempotent(spark: SparkSession, unique: str) -> None:
    spec = people(unique)
    batch = [("p1", "张三", 1, T0), ("p2", "李四", 2, T0), ("p3", "王五", 3, T0)]
    first = upsert(spark, spec, rows(spark, spec, batch))
    assert (first.inserted, first.updated) == (3, 0)
    second = upsert(spark, spec, rows(spark, spec, batch))
    assert (second.inserted, second.updated) == (0, 0)
    table = spark.table(spec.name)
    assert table.count() == 3
    assert table.select("patient_id").distinct().count() == 3


def test_upsert_keeps_the_newest_version_of_each_key(spark: SparkSession, unique: str) -> None:
    spec = people(unique)
    upsert(spark, spec, rows(spark, spec, [("p1", "a", 1, T1)]))
    # A late duplicate delivery of an older version, and two versions in one batch.
    upsert(spark, spec, rows(spark, spec, [("p1", "old", 0, T0)]))
    report = upsert(spark, spec, rows(spark, spec, [("p2", "x", 1, T0), ("p2", "y", 2, T2)]))
    assert report.inserted == 1
    got = {r["patient_id"]: (r["name"], r["visits"]) for r in spark.table(spec.name).collect()}
    assert got == {"p1": ("a", 1), "p2": ("y", 2)}
    upsert(spark, spec, rows(spark, spec, [("p1", "b", 5, T2)]))
    assert spark.table(spec.name).where("patient_id = 'p1'").first()["name"] == "b"  # type: ignore[index]


def test_schema_evolves_and_time_travel_reads_the_old_version(
    spark: SparkSession, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = people(unique)
    upsert(spark, spec, rows(spark, spec, [("p1", "a", 1, T0)]))
    v_before = DeltaTable.forName(spark, spec.name).history(1).first()["version"]  # type: ignore[index]

    phone = column("phone", StringType(), "Mobile phone.", phi=Phi.CONTACT)
    wider = people(unique, phone)
    wider = TableSpec(  # visits widened int -> bigint, a new PHI column, new comment
        name=wider.name,
        columns=tuple(
            column("visits", LongType(), "Number of visits (all sites).")
            if c.name == "visits"
            else c
            for c in wider.columns
        ),
        comment="People for a test, with phones.",
        keys=wider.keys,
        sequence_by=wider.sequence_by,
        cluster_by=("patient_id", "updated_at"),
    )
    evolved = ensure_table(spark, wider)
    v_evolved = DeltaTable.forName(spark, spec.name).history(1).first()["version"]  # type: ignore[index]
    assert evolved.added_columns == ["phone"]
    assert evolved.widened_columns == ["visits"]
    assert "visits" in evolved.recommented_columns
    assert "clustering" in evolved.properties_set
    assert ensure_table(spark, wider).changed is False  # second call: nothing to do

    upsert(spark, wider, rows(spark, wider, [("p2", "b", 2**40, T1, "13800000000")]))
    schema = {f.name: f for f in spark.table(spec.name).schema}
    assert schema["phone"].metadata == {"comment": "Mobile phone.", "phi": "contact"}
    assert isinstance(schema["visits"].dataType, LongType)
    assert schema["name"].metadata["phi"] == "name"

    old = spark.read.option("versionAsOf", v_before).table(spec.name)
    assert old.columns == ["patient_id", "name", "visits", "updated_at"]
    assert old.count() == 1
    assert spark.table(spec.name).count() == 2

    detail = DeltaTable.forName(spark, spec.name).detail().first()
    assert detail is not None
    assert detail["clusteringColumns"] == ["patient_id", "updated_at"]
    props = dict(detail["properties"])
    assert props["delta.enableChangeDataFeed"] == "true"
    assert json.loads(props[PHI_PROPERTY]) == {"name": "name", "phone": "contact"}
    # ensure_table reads the layout from the log snapshot and its checksum: DESCRIBE
    # DETAIL's, without its Spark jobs.
    layout = versions.snapshot_layout(spark, spec.name)
    assert layout == versions.detail_layout(spark, spec.name)
    assert layout is not None
    assert layout.clustering_columns == ("patient_id", "updated_at")
    assert layout.description == "People for a test, with phones."
    # Type widening is a schema change the change feed cannot be read across: incremental
    # consumers restart after it (docs/adr/0002). From there on the feed works.
    changes = (
        spark.read.option("readChangeFeed", "true")
        .option("startingVersion", v_evolved + 1)
        .table(spec.name)
    )
    assert [r["patient_id"] for r in changes.where("_change_type = 'insert'").collect()] == ["p2"]

    # The services' version lookup (Delta's log snapshot) agrees with the history, and so
    # does its fallback where that API is not reachable.
    newest = DeltaTable.forName(spark, spec.name).history(1).first()["version"]  # type: ignore[index]
    assert versions.latest_version(spark, spec.name) == newest > v_evolved
    monkeypatch.setattr(versions, "_snapshot_version", lambda *_: None)
    assert versions.latest_version(spark, spec.name) == newest
    assert versions.latest_version(spark, f"silver.missing_{unique}") is None


def test_narrowing_a_column_is_refused(spark: SparkSession, unique: str) -> None:
    spec = people(unique)
    ensure_table(spark, spec)
    narrower = TableSpec(
        name=spec.name,
        columns=tuple(
            column("visits", StringType(), "Visits as text.") if c.name == "visits" else c
            for c in spec.columns
        ),
        comment=spec.comment,
        keys=spec.keys,
        cluster_by=spec.cluster_by,
    )
    with pytest.raises(LakehouseError) as info:
        ensure_table(spark, narrower)
    assert info.value.code is ErrorCode.TABLE_SCHEMA_INCOMPATIBLE
    assert info.value.params["column"] == "visits"
    # A new partitioning would rewrite the data: refused too.
    repartitioned = TableSpec(
        name=spec.name, columns=spec.columns, comment=spec.comment, partition_by=("visits",)
    )
    with pytest.raises(LakehouseError) as info:
        ensure_table(spark, repartitioned)
    assert info.value.code is ErrorCode.TABLE_SCHEMA_INCOMPATIBLE
    assert info.value.params["column"] == "visits"


def test_bad_input_is_refused_with_codes(spark: SparkSession, unique: str) -> None:
    keyed = TableSpec(
        name=f"silver.codes_{unique}",
        columns=(PID, VISITS),
        comment="No sequence column.",
        keys=("patient_id",),
    )
    clash = spark.createDataFrame([("p1", 1), ("p1", 2)], keyed.schema)
    with pytest.raises(LakehouseError) as info:
        upsert(spark, keyed, clash)
    assert info.value.code is ErrorCode.DUPLICATE_KEYS

    same_twice = spark.createDataFrame([("p1", 1), ("p1", 1)], keyed.schema)
    assert upsert(spark, keyed, same_twice).inserted == 1

    extra = spark.createDataFrame([("p9", 1, "x")], "patient_id string, visits int, junk string")
    with pytest.raises(LakehouseError) as info:
        upsert(spark, keyed, extra)
    assert info.value.code is ErrorCode.INPUT_SCHEMA_MISMATCH

    no_key = spark.createDataFrame([(1,)], "visits int")
    with pytest.raises(LakehouseError) as info:
        upsert(spark, keyed, no_key)
    assert info.value.code is ErrorCode.INPUT_SCHEMA_MISMATCH


def test_append_only_tables(spark: SparkSession, unique: str) -> None:
    log = TableSpec(
        name=f"ops.events_{unique}",
        columns=(
            column("event", StringType(), "What happened.", nullable=False),
            column("day", StringType(), "Day of the event."),
        ),
        comment="Append-only log.",
        partition_by=("day",),
        append_only=True,
    )
    batch = spark.createDataFrame([("a", "d1"), ("b", "d2")], log.schema)
    assert append(spark, log, batch).inserted == 2
    with pytest.raises(Exception, match=r"(?i)append"):
        spark.sql(f"DELETE FROM {log.name} WHERE event = 'a'")
    assert spark.table(log.name).count() == 2
    layout = versions.snapshot_layout(spark, log.name)
    assert layout == versions.detail_layout(spark, log.name)
    assert layout is not None
    assert (layout.partition_columns, layout.clustering_columns) == (("day",), ())
    assert layout.properties["delta.appendOnly"] == "true"


def test_a_keyed_table_takes_an_append_only_of_fresh_keys(spark: SparkSession, unique: str) -> None:
    spec = people(unique)
    with pytest.raises(LakehouseError) as info:
        append(spark, spec, rows(spark, spec, [("p1", "a", 1, T0)]))
    assert info.value.code is ErrorCode.TABLE_SPEC_INVALID
    assert not spark.catalog.tableExists(spec.name)  # refused before anything was created

    first = append(spark, spec, rows(spark, spec, [("p1", "a", 1, T0)]), fresh_keys=True)
    assert (first.version, first.source_rows, first.inserted) == (1, 1, 1)  # 0: the creation
    report = append(spark, spec, rows(spark, spec, [("p2", "b", 2, T1)]), fresh_keys=True)
    assert report == writer.WriteReport(
        table=spec.name, version=first.version + 1, source_rows=1, inserted=1, updated=0
    )
    last = DeltaTable.forName(spark, spec.name).history(1).first()
    assert last is not None
    assert (last["operation"], last["isBlindAppend"]) == ("WRITE", True)
    got = sorted(tuple(r) for r in spark.table(spec.name).select("patient_id", "visits").collect())
    assert got == [("p1", 1), ("p2", 2)]


def test_a_target_filter_bounds_what_the_merge_reads(spark: SparkSession, unique: str) -> None:
    """Stored rows outside ``target_filter`` are not read: treated as absent (the caller's
    promise that none can match); rows inside it match as usual."""
    spec = people(unique)
    upsert(spark, spec, rows(spark, spec, [("p1", "a", 1, T0), ("p2", "b", 20, T0)]))
    again = rows(spark, spec, [("p1", "a", 1, T1), ("p2", "b", 20, T1)])
    report = upsert(spark, spec, again, insert_only=True, target_filter="t.visits >= 10")
    assert (report.inserted, report.updated) == (1, 0)  # p2 found; p1 never read
    ids = sorted(r["patient_id"] for r in spark.table(spec.name).collect())
    assert ids == ["p1", "p1", "p2"]
    with pytest.raises(LakehouseError) as info:
        upsert(spark, spec, again, delete_unmatched=True, target_filter="t.visits >= 10")
    assert info.value.code is ErrorCode.TABLE_SPEC_INVALID


def test_python_udf_over_a_delta_scan_completes(spark: SparkSession, unique: str) -> None:
    """pyspark 4.2.0 hangs here with Arrow UDFs on (SPARK-58241); spark.py turns them off."""
    spec = people(unique)
    upsert(spark, spec, rows(spark, spec, [("p1", "a", 1, T0), ("p2", "b", 2, T0)]))
    double = F.udf(lambda v: v * 2, "int")
    got = sorted(r[0] for r in spark.table(spec.name).select(double("visits")).collect())
    assert got == [2, 4]


# make test-all: tests/e2e/test_demo_command.py proves the same in make test (the demo's
# process writes ops.job_runs, a second `lakehouse sql` process reads it by name).
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_second_process_reads_the_table_by_name(tmp_path: Path) -> None:
    """One process writes through the embedded catalog and exits; the next reads by name."""
    env = lakehouse_env(tmp_path / "data", SPARK__SHUFFLE_PARTITIONS="1")
    prelude = textwrap.dedent(
        """
        from pyspark.sql.types import StringType
        from lakehouse.settings import load_settings
        from lakehouse.spark import build_spark
        from lakehouse.tables.spec import TableSpec, column
        from lakehouse.tables.writer import upsert
        spec = TableSpec(name="gold.handover", comment="Written by process one.",
                         columns=(column("k", StringType(), "Key.", nullable=False),
                                  column("v", StringType(), "Value.")), keys=("k",))
        spark = build_spark(load_settings())
        """
    )
    writer = (
        prelude + "upsert(spark, spec, spark.createDataFrame([('a','1'),('b','2')], spec.schema))\n"
    )
    reader = (
        prelude
        + "got = spark.sql('select k, v from gold.handover').collect()\n"
        + "print('ROWS', sorted(tuple(r) for r in got))\n"
    )
    for script in (writer, reader):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert "ROWS [('a', '1'), ('b', '2')]" in done.stdout


def test_python_workers_run_the_project_interpreter(spark: SparkSession) -> None:
    """mapInArrow needs pyarrow in the workers: they must run .venv's Python, not python3."""

    def where(batches):  # type: ignore[no-untyped-def]
        import sys

        import pyarrow as pa

        for _ in batches:
            yield pa.RecordBatch.from_pylist([{"exe": sys.executable}])

    got = spark.range(1).mapInArrow(where, "exe string").first()
    assert got is not None
    assert got["exe"] == sys.executable


def test_concurrent_upserts_each_report_their_own_commit(spark: SparkSession, unique: str) -> None:
    """Two writers race on one table: both land (retrying conflicts), counts stay their own."""
    from concurrent.futures import ThreadPoolExecutor

    spec = people(unique)
    ensure_table(spark, spec)
    batches = [
        [(f"a{i}", "x", i, T0) for i in range(3)],
        [(f"b{i}", "y", i, T0) for i in range(5)],
    ]
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda b: upsert(spark, spec, rows(spark, spec, b)), batches))
    assert [r.inserted for r in reports] == [3, 5]
    assert reports[0].version != reports[1].version
    assert spark.table(spec.name).count() == 8
    # The reports come from the commit files (no Spark job); the table history, their
    # fallback, tells the same of each commit, and of a tag no commit after it carries.
    tags = {
        r["version"]: r["userMetadata"]
        for r in DeltaTable.forName(spark, spec.name).history(2).collect()
    }
    for report in reports:
        token = tags[report.version]
        from_history = writer._commit_report(spark, spec.name, token)
        assert from_history == report
        assert writer._commit_report(spark, spec.name, token, after=0) == report
    nothing = writer._commit_report(spark, spec.name, "no-such-tag", after=0)
    assert nothing == writer._commit_report(spark, spec.name, "no-such-tag")
    assert (nothing.version, nothing.inserted) == (max(tags), 0)


def test_insert_only_keeps_what_landed_first(spark: SparkSession, unique: str) -> None:
    raw = TableSpec(
        name=f"bronze.raw_{unique}",
        columns=(PID, column("run", StringType(), "Run that landed the row.")),
        comment="Raw records keyed by source position.",
        keys=("patient_id",),
    )
    first = upsert(
        spark, raw, spark.createDataFrame([("p1", "r1"), ("p2", "r1")], raw.schema),
        insert_only=True,
    )  # fmt: skip
    assert first.inserted == 2
    # A replay (other run id) plus one new key, and a key twice within the batch.
    again = upsert(
        spark,
        raw,
        spark.createDataFrame([("p1", "r2"), ("p3", "r2"), ("p3", "r3")], raw.schema),
        insert_only=True,
    )
    assert (again.inserted, again.updated) == (1, 0)
    got = {r["patient_id"]: r["run"] for r in spark.table(raw.name).collect()}
    assert got["p1"] == "r1"
    assert set(got) == {"p1", "p2", "p3"}


def test_ties_on_the_sequence_pick_the_same_row_in_every_run(
    spark: SparkSession, unique: str
) -> None:
    """Two versions of a key with the same source time: the winner depends on their content,
    never on the run that derived them (volatile columns), so a rebuild, a cluster run or a
    rerun picks the same row."""
    run = column("run_id", StringType(), "Run that derived the row.")
    spec = people(unique, run, volatile=("run_id",))
    winners = set()
    for i in range(20):
        batch = [("p1", "张三", 1, T1, f"run-{i}"), ("p1", "张三", 2, T1, f"run-{i}")]
        (row,) = latest_per_key(rows(spark, spec, batch), spec).collect()
        winners.add(row["visits"])
    assert len(winners) == 1
