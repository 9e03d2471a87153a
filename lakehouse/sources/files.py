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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.sources.records import LINEAGE
from lakehouse.spark import session_conf

#: Most hashes a manifest lookup names in its plan (more are broadcast: one Spark job more).
_IN_LIST_MAX = 1000
_GLOB_CHARS = re.compile(r"([\[\]{}*?\\])")
#: Files a writer is still producing, or hidden files: never taken.
_SKIP = re.compile(r"(^|/)\.[^/]*$|\.(tmp|part|partial|crdownload)$")


@dataclass(frozen=True)
class Discovery:
    """Files of one source folder: how many, how many known, and the new ones (bounded)."""

    files_seen: int
    files_unchanged: int
    new_files: list[tuple[str, int, int]]  # (path, size in bytes, modification time in ms)


def list_landing(spark: SparkSession, folder: str) -> list[tuple[str, int, int]]:
    """(path, size in bytes, modification time in ms) of every file under ``folder``, listed
    by Hadoop's file system on the driver (metadata only; any Hadoop file system: local,
    HDFS, S3A); hidden files and files a writer is still producing are left out.

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
            name = str(st.getPath().toString())
            if not _SKIP.search(name):
                rows.append((name, int(st.getLen()), int(st.getModificationTime())))
    return rows


def discover(
    spark: SparkSession, listing: list[tuple[str, int, int]], manifest: DataFrame, *, limit: int
) -> Discovery:
    """Split a listing into unchanged files (in the manifest) and new ones (at most ``limit``).

    One Spark job: the manifest's rows that match a listed file (path, size and time) are
    found by a join with the listing broadcast (the manifest is never shuffled) and reach
    the driver, which holds the listing already.
    """
    if not listing:
        return Discovery(files_seen=0, files_unchanged=0, new_files=[])
    listed = spark.createDataFrame(listing, "file_path string, size_bytes long, modified_ms long")
    keys = ["file_path", "size_bytes", "modified_at"]
    known = {
        (r["file_path"], int(r["size_bytes"]), int(r["ms"]))
        for r in manifest.select(*keys)
        .join(
            F.broadcast(
                listed.select(
                    "file_path",
                    "size_bytes",
                    F.timestamp_millis("modified_ms").alias("modified_at"),
                )
            ),
            keys,
            "left_semi",
        )
        .select("file_path", "size_bytes", F.unix_millis("modified_at").alias("ms"))
        .collect()
    }
    fresh = sorted(f for f in listing if f not in known)
    return Discovery(
        files_seen=len(listing), files_unchanged=len(listing) - len(fresh), new_files=fresh[:limit]
    )


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
        with _listed_on_driver(spark, len(paths), local=root_uri.startswith("file:")):
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


@contextmanager
def _listed_on_driver(spark: SparkSession, paths: int, *, local: bool) -> Iterator[None]:
    """While a reader is built: stat ``paths`` files on the driver, not in a Spark job.

    Spark lists more than ``parallelPartitionDiscovery.threshold`` (32) paths in a Spark job
    of one task per path (~2 s for 200 files here). On a local file system a stat costs
    microseconds and the driver has just listed these files itself; elsewhere (HDFS, S3A,
    a round trip per file) the parallel listing is kept.
    """
    key = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    threshold = int(spark.conf.get(key, None) or 32)
    with session_conf(spark, {key: str(paths)} if local and paths > threshold else {}):
        yield


@dataclass(frozen=True)
class FileKey:
    """A new file as its manifest row needs it: path, content hash, institution, size, and
    the path of an earlier file with the same content (``None`` unless a duplicate)."""

    path: str
    sha256: str
    institution: str
    size: int
    duplicate_of: str | None


def decide_duplicates(files: DataFrame, manifest: DataFrame) -> list[FileKey]:
    """Each file's key, and ``duplicate_of``: the path of an earlier file with the same
    content, or ``None``.

    Earlier means landed by a previous run (manifest) or, within this run, first by path.
    Empty files are never duplicates. Two Spark jobs: the files' keys (one row per file,
    as the listing was) and the manifest rows with the same content; the rest is decided on
    the driver, so a later evaluation of ``files`` (after the manifest commit, say) cannot
    decide otherwise.
    """
    keys = files.select("file_path", "file_sha256", "institution_code", "size_bytes").collect()
    hashes = sorted({r["file_sha256"] for r in keys if r["size_bytes"] > 0})
    prior: dict[str, list[str]] = {}
    if hashes:
        # Never a duplicate-status row (it is not the landed copy); never the file itself
        # (a rerun after a commit must agree with the run that landed it), below. Many
        # hashes (up to max_files_per_run) are broadcast rather than put in the plan.
        landed = manifest.where(F.col("status") != "duplicate")
        if len(hashes) <= _IN_LIST_MAX:
            same = landed.where(F.col("file_sha256").isin(hashes))
        else:
            wanted = files.sparkSession.createDataFrame(
                [(h,) for h in hashes], "file_sha256 string"
            )
            same = landed.join(F.broadcast(wanted), "file_sha256", "left_semi")
        for r in same.select("file_sha256", "file_path").collect():
            prior.setdefault(r["file_sha256"], []).append(r["file_path"])
    first_in_run: dict[str, str] = {}
    for r in sorted(keys, key=lambda r: r["file_path"]):
        first_in_run.setdefault(r["file_sha256"], r["file_path"])
    out = []
    for r in keys:
        path, sha = r["file_path"], r["file_sha256"]
        earlier = min((p for p in prior.get(sha, ()) if p != path), default=None)
        if r["size_bytes"] == 0:
            dup = None
        elif earlier is not None:
            dup = earlier
        elif first_in_run[sha] != path:
            dup = first_in_run[sha]
        else:
            dup = None
        out.append(FileKey(path, sha, r["institution_code"], int(r["size_bytes"]), dup))
    return out


def mark_duplicates(files: DataFrame, keys: list[FileKey]) -> DataFrame:
    """``files`` with ``duplicate_of`` (:func:`decide_duplicates`), joined by broadcast: the
    content is not shuffled."""
    marks = files.sparkSession.createDataFrame(
        [(k.path, k.duplicate_of) for k in keys], "file_path string, duplicate_of string"
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
