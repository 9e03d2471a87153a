"""What Delta's log snapshot says of a table without a Spark job: the newest committed
version (what incremental jobs pin their reads to and what services cite and audit), its
size, and its layout (what :func:`~lakehouse.tables.writer.ensure_table` compares with the
spec on every write).

Services ask on their hot path (every tool call of the assistant, every FHIR read), so the
version comes from Delta's own log snapshot (``DeltaLog.forTableWithSnapshot``: the cached
log brought up to date by listing the commits after the version it knows; milliseconds, no
Spark job) and only falls back to ``DESCRIBE HISTORY`` (a Spark job, 0.25-0.4 s) where the
JVM is not reachable from Python (Spark Connect) or Delta's internal API has changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


def latest_version(spark: SparkSession, table: str) -> int | None:
    """The newest Delta version of ``table``; ``None`` when it does not exist (yet)."""
    if not spark.catalog.tableExists(table):
        return None
    version = _snapshot_version(spark, table)
    if version is not None:
        return version
    row = DeltaTable.forName(spark, table).history(1).select("version").first()
    return None if row is None else int(row["version"])


def require_version(spark: SparkSession, table: str) -> int:
    """:func:`latest_version` of a table the caller knows exists."""
    version = latest_version(spark, table)
    assert version is not None, table
    return version


def _snapshot_version(spark: SparkSession, table: str) -> int | None:
    """The version of the table's updated log snapshot, or ``None`` where that API is not
    reachable (the caller then asks the table's history)."""
    snap = _snapshot(spark, table)
    return None if snap is None else int(snap.version())


def snapshot_detail(spark: SparkSession, table: str) -> dict[str, int | float] | None:
    """Version, size in bytes, file count and last commit time (epoch s) from the table's
    log snapshot (no Spark job); ``None`` where the snapshot is not reachable or the table
    has no commit (the caller then asks ``DESCRIBE DETAIL``)."""
    snap = _snapshot(spark, table)
    if snap is None or int(snap.version()) < 0:
        return None
    return {
        "version": int(snap.version()),
        "size_bytes": int(snap.sizeInBytes()),
        "files": int(snap.numOfFiles()),
        "modified": int(snap.timestamp()) / 1000.0,
    }


@dataclass(frozen=True)
class TableLayout:
    """Partitioning, liquid clustering, table properties and comment of a Delta table (the
    columns ``DESCRIBE DETAIL`` names ``partitionColumns``, ``clusteringColumns``,
    ``properties`` and ``description``)."""

    partition_columns: tuple[str, ...]
    clustering_columns: tuple[str, ...]
    properties: dict[str, str]
    description: str | None


_CLUSTERING_DOMAIN = "delta.clustering"


def table_layout(spark: SparkSession, table: str) -> TableLayout:
    """The layout of an existing Delta table: from its log snapshot and the snapshot's
    checksum (milliseconds), else from ``DESCRIBE DETAIL``.

    ``DESCRIBE DETAIL`` is one Spark job, and three more the first time a version is looked
    at (it reconstructs the table's state for its size and its clustering domain): 0.3 s to
    several seconds per table, on every ``ensure_table`` and so on every write.
    """
    layout = snapshot_layout(spark, table)
    return layout if layout is not None else detail_layout(spark, table)


def detail_layout(spark: SparkSession, table: str) -> TableLayout:
    """:func:`table_layout` from ``DESCRIBE DETAIL`` (Spark jobs; works everywhere)."""
    row = (
        DeltaTable.forName(spark, table)
        .detail()
        .select("partitionColumns", "clusteringColumns", "properties", "description")
        .first()
    )
    assert row is not None, table
    return TableLayout(
        partition_columns=tuple(row["partitionColumns"] or ()),
        clustering_columns=tuple(row["clusteringColumns"] or ()),
        properties=dict(row["properties"] or {}),
        description=row["description"],
    )


def snapshot_layout(spark: SparkSession, table: str) -> TableLayout | None:
    """:func:`table_layout` from the log snapshot (metadata) and its checksum (the clustering
    domain); ``None`` where the snapshot is not reachable, the version has no checksum with
    its domains, or columns are mapped to physical names (then the caller asks
    ``DESCRIBE DETAIL``)."""
    snap = _snapshot(spark, table)
    if snap is None or int(snap.version()) < 0:
        return None
    try:
        meta = json.loads(snap.metadata().json())["metaData"]
        properties = {str(k): str(v) for k, v in (meta.get("configuration") or {}).items()}
        if properties.get("delta.columnMapping.mode", "none") != "none":
            return None  # the clustering domain names physical columns
        checksum = snap.checksumOpt()
        if not checksum.isDefined() or not checksum.get().domainMetadata().isDefined():
            return None
        domains = checksum.get().domainMetadata().get()
        clustering: tuple[str, ...] = ()
        for i in range(domains.length()):
            domain = domains.apply(i)
            if domain.domain() == _CLUSTERING_DOMAIN and not domain.removed():
                paths = json.loads(domain.configuration()).get("clusteringColumns") or []
                if any(len(path) != 1 for path in paths):
                    return None  # nested columns: DESCRIBE DETAIL names them
                clustering = tuple(str(path[0]) for path in paths)
        return TableLayout(
            partition_columns=tuple(meta.get("partitionColumns") or ()),
            clustering_columns=clustering,
            properties=properties,
            description=meta.get("description"),
        )
    except Exception as exc:  # internal API: any change means "ask DESCRIBE DETAIL"
        logger.debug("Delta snapshot layout not available (%s); using DESCRIBE DETAIL", type(exc))
        return None


def log_version(spark: SparkSession, table: str) -> int | None:
    """The version of the table's updated log snapshot (milliseconds), or ``None`` where the
    snapshot is not reachable; no fallback to the history (see :func:`latest_version`)."""
    return _snapshot_version(spark, table)


@dataclass(frozen=True)
class Commit:
    """One commit of a table: its version, operation and operation metrics (as
    ``DESCRIBE HISTORY`` shows them)."""

    version: int
    operation: str
    metrics: dict[str, str]


@dataclass(frozen=True)
class CommitSearch:
    """What :func:`tagged_commit` found: the newest version, and the tagged commit if any."""

    latest: int
    commit: Commit | None


def tagged_commit(
    spark: SparkSession, table: str, user_metadata: str, *, after: int
) -> CommitSearch | None:
    """The commit after version ``after`` whose ``userMetadata`` is ``user_metadata``, read
    from the commit files themselves, newest first (the writer's own commit is almost always
    the newest: one file read, no Spark job, where ``DESCRIBE HISTORY`` runs one).

    ``commit`` is ``None`` when no commit after ``after`` carries the tag (the write
    committed nothing). ``None`` where the log is not reachable this way or a commit file
    cannot be read (then the caller asks the history).
    """
    found = _log_and_snapshot(spark, table)
    if found is None:
        return None
    log, snap = found
    try:
        latest = int(snap.version())
        jvm = spark._jvm
        assert jvm is not None
        manager = jvm.org.apache.spark.sql.delta.DeltaHistoryManager
        names = jvm.org.apache.spark.sql.delta.util.FileNames
        store, conf, log_path = log.store(), log.newDeltaHadoopConf(), log.logPath()
        for version in range(latest, after, -1):
            info = manager.getCommitInfoOpt(store, names.unsafeDeltaFile(log_path, version), conf)
            if not info.isDefined():
                return None  # a commit without its commitInfo: let the history decide
            action = json.loads(info.get().json())["commitInfo"]
            if action.get("userMetadata") == user_metadata:
                metrics = {
                    str(k): str(v) for k, v in (action.get("operationMetrics") or {}).items()
                }
                commit = Commit(version, str(action.get("operation")), metrics)
                return CommitSearch(latest, commit)
        return CommitSearch(latest, None)
    except Exception as exc:  # internal API or an unreadable (e.g. unbackfilled) commit file
        logger.debug("Delta commit files not readable (%s); using the table history", type(exc))
        return None


def _snapshot(spark: SparkSession, table: str) -> Any | None:
    """Delta's updated log snapshot of ``table`` (a JVM object), or ``None`` under Spark
    Connect, for a table of another format, or where the internal API has changed."""
    found = _log_and_snapshot(spark, table)
    return None if found is None else found[1]


def _log_and_snapshot(spark: SparkSession, table: str) -> tuple[Any, Any] | None:
    """Delta's log of ``table`` and its updated snapshot (JVM objects), or ``None`` where
    they are not reachable (see :func:`_snapshot`)."""
    jvm = getattr(spark, "_jvm", None)
    session = getattr(spark, "_jsparkSession", None)
    if jvm is None or session is None:  # Spark Connect
        return None
    try:
        ident = session.sessionState().sqlParser().parseTableIdentifier(table)
        pair = jvm.org.apache.spark.sql.delta.DeltaLog.forTableWithSnapshot(session, ident)
        return pair._1(), pair._2()
    except Exception as exc:  # internal API: any change means "ask the history"
        logger.debug("Delta log snapshot not available (%s); using the table history", type(exc))
        return None
