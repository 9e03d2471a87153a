"""The newest committed version of a Delta table: what incremental jobs pin their reads to
and what services cite and audit.

Services ask on their hot path (every tool call of the assistant, every FHIR read), so the
version comes from Delta's own log snapshot (``DeltaLog.forTableWithSnapshot``: the cached
log brought up to date by listing the commits after the version it knows; milliseconds, no
Spark job) and only falls back to ``DESCRIBE HISTORY`` (a Spark job, 0.25-0.4 s) where the
JVM is not reachable from Python (Spark Connect) or Delta's internal API has changed.
"""

from __future__ import annotations

import logging
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


def _snapshot(spark: SparkSession, table: str) -> Any | None:
    """Delta's updated log snapshot of ``table`` (a JVM object), or ``None`` under Spark
    Connect, for a table of another format, or where the internal API has changed."""
    jvm = getattr(spark, "_jvm", None)
    session = getattr(spark, "_jsparkSession", None)
    if jvm is None or session is None:  # Spark Connect
        return None
    try:
        ident = session.sessionState().sqlParser().parseTableIdentifier(table)
        return jvm.org.apache.spark.sql.delta.DeltaLog.forTableWithSnapshot(session, ident)._2()
    except Exception as exc:  # internal API: any change means "ask the history"
        logger.debug("Delta log snapshot not available (%s); using the table history", type(exc))
        return None
