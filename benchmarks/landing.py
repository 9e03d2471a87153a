"""The landing's file reader as the benchmarks time it (a folder's files with the lineage
columns the bronze parsers take: path, SHA-256, source, institution, size, content), and
the three floors printed next to each landing: Spark's (:func:`spark_floor`), Delta's
(:func:`delta_floor`) and what issue #4 requires of any landing (:func:`required_floor`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def landing_files(spark: Any, folder: Path, root_uri: str, source: str) -> Any:
    """The files under ``folder`` as ``jobs.ingest`` reads them for ``source``."""
    from pyspark.sql import functions as F

    from lakehouse.sources.files import institution_of

    return (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(str(folder))
        .select(
            F.col("path").alias("file_path"),
            F.sha2("content", 256).alias("file_sha256"),
            F.lit(source).alias("source_system"),
            institution_of(F.col("path"), root_uri, source).alias("institution_code"),
            F.col("length").alias("size_bytes"),
            "content",
        )
    )


def spark_floor(spark: Any, folder: Path, separator: str, keep: str) -> tuple[int, float]:
    """The least any Spark landing of ``folder`` does: read each file, split its text on
    ``separator`` (a regex) and count the pieces that start with ``keep`` (a regex), into a
    no-op sink. No hashing, no checks, no field extraction, no write: what Spark itself
    costs on this machine, so a target above it is out of reach for any Spark code."""
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    pieces = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(str(folder))
        .select(F.explode(F.split(F.col("content").cast("string"), separator)).alias("piece"))
        .where(F.col("piece").rlike(keep))
    )
    pieces.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - t0
    return int(pieces.count()), seconds


def delta_floor_tables(spark: Any, scratch: Path, *, versions: int = 5) -> tuple[str, str]:
    """The two existing Delta tables :func:`delta_floor` appends to, created under
    ``scratch`` and warmed with ``versions`` small commits each (a running pipeline's tables
    are not new: each commit pays for the table's log, checksum and snapshot)."""
    from pyspark.sql import functions as F

    records, reports = str(scratch / "records"), str(scratch / "reports")
    for i in range(versions):
        spark.range(1).select(
            F.lit(f"warm-{i}").alias("file_path"), F.lit("").alias("raw")
        ).write.format("delta").mode("append").save(records)
        _report(spark, f"warm-{i}", 0).write.format("delta").mode("append").save(reports)
        if i == 0:
            _no_raw_statistics(spark, records)
    return records, reports


def _no_raw_statistics(spark: Any, table: str) -> None:
    """Statistics on every column but ``raw``, as bronze's specs have them (a raw payload
    is never filtered on: ``TableSpec.unindexed_columns``)."""
    columns = [c for c in spark.read.format("delta").load(table).columns if c != "raw"]
    spark.sql(
        f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES "
        f"('delta.dataSkippingStatsColumns' = '{','.join(columns)}')"
    )


def _report(spark: Any, run_id: str, records: int) -> Any:
    from pyspark.sql import functions as F

    return spark.range(1).select(
        F.lit(run_id).alias("run_id"),
        F.lit(records).cast("long").alias("records"),
        F.current_timestamp().alias("finished_at"),
    )


def delta_floor(
    spark: Any, folder: Path, separator: str, keep: str, tables: tuple[str, str]
) -> tuple[int, float]:
    """The least any landing of ``folder`` that meets issue #4 writes to Delta here: every
    record (the files split on ``separator``, a regex, the pieces that start with ``keep``)
    appended as (path, raw text) to an existing table, then one report row, carrying their
    count (observed on the write job), appended to a second existing table (``tables``, from
    :func:`delta_floor_tables`). Two commits, as Delta commits one table at a time; no
    hashing, checks, field extraction, manifest, quarantine or MERGE. Each record is written
    once, so no landing that keeps its records in Delta and reports its run in Delta can be
    faster than this on this machine: a target above it is out of reach for any Delta
    landing, whatever its parser. One run, timed; callers take the best of a few warm ones."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    records, reports = tables
    t0 = time.perf_counter()
    # The count rides on the write job (an observed metric), as a landing's would.
    counted = Observation("landed")
    (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(str(folder))
        .select("path", F.explode(F.split(F.col("content").cast("string"), separator)).alias("raw"))
        .where(F.col("raw").rlike(keep))
        .select(F.col("path").alias("file_path"), "raw")
        .observe(counted, F.count(F.lit(1)).alias("records"))
        .write.format("delta")
        .mode("append")
        .save(records)
    )
    landed = int(counted.get["records"])
    _report(spark, f"run-{t0}", landed).write.format("delta").mode("append").save(reports)
    return landed, time.perf_counter() - t0


def required_floor_tables(
    spark: Any, scratch: Path, fields: Callable[[Any], list[Any]], *, versions: int = 5
) -> tuple[str, str, str]:
    """The three existing Delta tables :func:`required_floor` appends to (records with the
    columns ``fields`` gives, manifest, reports), created under ``scratch`` and warmed with
    ``versions`` small commits each."""
    from pyspark.sql import functions as F

    records, manifest, reports = (str(scratch / n) for n in ("records", "manifest", "reports"))
    for i in range(versions):
        spark.range(1).select(
            F.lit(f"warm-{i}").alias("file_path"),
            F.lit("").alias("file_sha256"),
            F.lit(0).cast("long").alias("record_index"),
            F.lit("x").alias("run_id"),
            F.current_timestamp().alias("ingested_at"),
            *fields(F.lit("")),
            F.lit("").alias("raw"),
        ).write.format("delta").mode("append").save(records)
        _manifest(spark, [(f"warm-{i}", 0, 0)], "x").write.format("delta").mode("append").save(
            manifest
        )
        _report(spark, f"warm-{i}", 0).write.format("delta").mode("append").save(reports)
        if i == 0:
            _no_raw_statistics(spark, records)
    return records, manifest, reports


def _manifest(spark: Any, files: list[tuple[str, int, int]], run_id: str) -> Any:
    from pyspark.sql import functions as F

    return spark.createDataFrame(
        files, "file_path string, size_bytes long, modified_ms long"
    ).select(
        "file_path",
        "size_bytes",
        F.timestamp_millis("modified_ms").alias("modified_at"),
        F.lit(run_id).alias("run_id"),
    )


def required_floor(
    spark: Any,
    folder: Path,
    separator: str,
    keep: str,
    fields: Callable[[Any], list[Any]],
    tables: tuple[str, str, str],
) -> tuple[int, float]:
    """What issue #4 requires of every landing, and nothing more. The folder listed on the
    driver; each file read once and its SHA-256 computed (a lineage column the issue names);
    split on ``separator`` (a regex) into records (the pieces that start with ``keep``);
    each record appended with its lineage (path, SHA-256, record index, run id, time), the
    fields the peer extracts too (``fields``: the record's raw text column -> columns) and
    its raw text to an existing Delta table; one manifest row per file (path, size, time)
    to a second; one report row with the count (observed on the write job) to a third
    (``tables``, from :func:`required_floor_tables`). Three commits: records, manifest and
    report are the issue's own tables (bronze, "a file manifest table", ``ops.ingest_runs``).
    No validation, quarantine, duplicate check, encoding detection or MERGE, which a real
    landing adds. A target above this floor is out of reach for any landing that meets the
    issue on this machine. One run, timed; callers take the best of a few warm ones."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    records, manifest, reports = tables
    run_id = f"run-{time.perf_counter_ns()}"
    t0 = time.perf_counter()
    listed = [
        (f"file:{p}", st.st_size, st.st_mtime_ns // 1_000_000)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and (st := p.stat())
    ]
    counted = Observation("landed")
    # The hash in a select of its own, below the generator: in the generator's select it
    # would be evaluated once per record (its output row), not once per file.
    (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(str(folder))
        .select("path", F.sha2("content", 256).alias("file_sha256"), "content")
        .select(
            "path",
            "file_sha256",
            F.posexplode(F.split(F.col("content").cast("string"), separator)).alias(
                "record_index", "raw"
            ),
        )
        .where(F.col("raw").rlike(keep))
        .select(
            F.col("path").alias("file_path"),
            "file_sha256",
            F.col("record_index").cast("long").alias("record_index"),
            F.lit(run_id).alias("run_id"),
            F.current_timestamp().alias("ingested_at"),
            *fields(F.col("raw")),
            "raw",
        )
        .observe(counted, F.count(F.lit(1)).alias("records"))
        .write.format("delta")
        .mode("append")
        .save(records)
    )
    landed = int(counted.get["records"])
    _manifest(spark, listed, run_id).write.format("delta").mode("append").save(manifest)
    _report(spark, run_id, landed).write.format("delta").mode("append").save(reports)
    return landed, time.perf_counter() - t0
