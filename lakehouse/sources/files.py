"""Landing files: discovery against the manifest, hashing in Spark, duplicate detection.

The landing layout is ``<root>/<source>/<institution_code>/<files...>``. A run lists the
source folder through Hadoop's file system (metadata only: path, size, modification time;
no file is opened), drops files the manifest ``ops.landing_files`` already
holds with the same path, size and time, and reads the rest; the SHA-256 of each file is
computed by the executors (``sha2``), never on the driver. A file whose content was landed
before, under any name, or that appears twice in one run, is a duplicate: recorded in the
manifest and not parsed. Zero-byte files are never duplicates of each other: each is
quarantined on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.sources.records import LINEAGE

_GLOB_CHARS = re.compile(r"([\[\]{}*?\\])")
#: Files a writer is still producing, or hidden files: never taken.
_SKIP_NAME = r"(^|/)\.[^/]*$|\.(tmp|part|partial|crdownload)$"


@dataclass(frozen=True)
class Discovery:
    """Files of one source folder: how many, how many known, and the new ones (bounded)."""

    files_seen: int
    files_unchanged: int
    new_files: list[tuple[str, int, int]]  # (path, size in bytes, modification time in ms)


def list_files(spark: SparkSession, folder: str) -> DataFrame:
    """Metadata of every file under ``folder``, listed by Hadoop's file system (no content).

    Listing runs on the driver (metadata only; any Hadoop file system: local, HDFS, S3A).
    Spark's file sources skip zero-byte files, which must be seen to be quarantined.
    """
    jvm = spark._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(folder)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    rows: list[tuple[str, int, int]] = []
    if fs.exists(path):
        it = fs.listFiles(path, True)
        while it.hasNext():
            st = it.next()
            rows.append(
                (str(st.getPath().toString()), int(st.getLen()), int(st.getModificationTime()))
            )
    df = spark.createDataFrame(rows, "file_path string, size_bytes long, modified_ms long")
    return df.where(~F.col("file_path").rlike(_SKIP_NAME)).select(
        "file_path", "size_bytes", F.timestamp_millis("modified_ms").alias("modified_at")
    )


def discover(listing: DataFrame, manifest: DataFrame, *, limit: int) -> Discovery:
    """Split a listing into unchanged files (in the manifest) and new ones (at most ``limit``).

    Only the new files' metadata reaches the driver, and at most ``limit`` of them.
    """
    known = manifest.select("file_path", "size_bytes", "modified_at")
    fresh = listing.join(known, ["file_path", "size_bytes", "modified_at"], "left_anti")
    counts = listing.agg(F.count("*").alias("n")).first()
    seen = int(counts["n"]) if counts else 0
    taken = fresh.orderBy("file_path").limit(limit)
    new = [
        (r["file_path"], int(r["size_bytes"]), int(r["ms"]))
        for r in taken.select("*", F.unix_millis("modified_at").alias("ms")).collect()
    ]
    new_total = fresh.count() if len(new) == limit else len(new)
    return Discovery(files_seen=seen, files_unchanged=seen - new_total, new_files=new)


def read_files(
    spark: SparkSession, found: list[tuple[str, int, int]], *, source: str, root_uri: str
) -> DataFrame:
    """The files' bytes with lineage: SHA-256 (computed in Spark), source and institution.

    Empty files get empty content; a file that vanished since it was listed is left out
    (the next run sees it, or not, again). The listing (one row per file) is broadcast to
    the readers: the content is never shuffled.
    """
    meta = spark.createDataFrame(found, "file_path string, size_bytes long, modified_ms long")
    empty = meta.where(F.col("size_bytes") == 0).select(
        "file_path", "size_bytes", "modified_ms", F.lit(b"").alias("content")
    )
    paths = [_GLOB_CHARS.sub(r"\\\1", p) for p, size, _ in found if size > 0]
    if paths:
        raw = (
            spark.read.format("binaryFile")
            .load(paths)
            .select(F.col("path").alias("file_path"), "content")
        )
        listed = F.broadcast(meta.where(F.col("size_bytes") > 0))
        joined = raw.join(listed, "file_path").unionByName(empty)
    else:
        joined = empty
    content = F.coalesce(F.col("content"), F.lit(b""))
    return joined.select(
        "file_path",
        F.sha2(content, 256).alias("file_sha256"),
        F.lit(source).alias("source_system"),
        institution_of(F.col("file_path"), root_uri, source).alias("institution_code"),
        "size_bytes",
        F.timestamp_millis("modified_ms").alias("modified_at"),
        content.alias("content"),
    )


def institution_of(path: Column, root_uri: str, source: str) -> Column:
    """The first folder under ``<root>/<source>/`` ('unknown' for a file placed directly)."""
    prefix = root_uri.rstrip("/") + "/" + source + "/"
    rel = F.when(path.startswith(prefix), F.substring(path, len(prefix) + 1, 1 << 30))
    inst = F.when(F.instr(rel, "/") > 0, F.substring_index(rel, "/", 1))
    return F.coalesce(inst, F.lit("unknown"))


def mark_duplicates(files: DataFrame, manifest: DataFrame) -> DataFrame:
    """Add ``duplicate_of``: the path of an earlier file with the same content, or null.

    Earlier means landed by a previous run (manifest) or, within this run, first by path.
    Empty files are never duplicates. Decided once, here, from the files' paths and hashes
    (one row per file reaches the driver, as the listing did) and joined back to the files
    by broadcast: the content is not shuffled, and a later evaluation of the result (after
    the manifest commit, say) cannot decide otherwise.
    """
    # Never the file itself (a rerun after a commit must agree with the run that landed it).
    m = manifest.where(F.col("status") != "duplicate").select(
        F.col("file_sha256").alias("m_sha"), F.col("file_path").alias("m_path")
    )
    keys = files.select("file_path", "file_sha256", "size_bytes")
    taken = (
        keys.join(
            m, (F.col("file_sha256") == F.col("m_sha")) & (F.col("file_path") != F.col("m_path"))
        )
        .groupBy("file_path")
        .agg(F.min("m_path").alias("prior_path"))
    )
    first_in_run = F.first("file_path").over(Window.partitionBy("file_sha256").orderBy("file_path"))
    decided = (
        keys.join(taken, "file_path", "left")
        .withColumn("run_first", first_in_run)
        .select(
            "file_path",
            F.when(F.col("size_bytes") == 0, F.lit(None))
            .when(F.col("prior_path").isNotNull(), F.col("prior_path"))
            .when(F.col("run_first") != F.col("file_path"), F.col("run_first"))
            .alias("duplicate_of"),
        )
        .collect()
    )
    marks = files.sparkSession.createDataFrame(
        [(r["file_path"], r["duplicate_of"]) for r in decided],
        "file_path string, duplicate_of string",
    )
    return files.join(F.broadcast(marks), "file_path", "left")


def empty_file_records(files: DataFrame) -> DataFrame:
    """One quarantine record per zero-byte file (the parsers never see them)."""
    return files.where(F.col("size_bytes") == 0).select(
        *LINEAGE,
        F.lit(0).cast("long").alias("record_index"),
        F.col("content").alias("raw_bytes"),
        F.lit(ErrorCode.ZERO_BYTE_FILE.name).alias("error_name"),
        F.lit(None).cast("string").alias("error_reason"),
        F.lit(None).cast("string").alias("error_found"),
        F.lit(None).cast("string").alias("error_expected"),
    )
