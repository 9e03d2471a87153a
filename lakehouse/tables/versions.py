"""The newest committed version of a Delta table: what incremental jobs pin their reads to
and what services cite and audit."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import SparkSession


def latest_version(spark: SparkSession, table: str) -> int | None:
    """The newest Delta version of ``table``; ``None`` when it does not exist (yet)."""
    if not spark.catalog.tableExists(table):
        return None
    row = DeltaTable.forName(spark, table).history(1).select("version").first()
    return None if row is None else int(row["version"])


def require_version(spark: SparkSession, table: str) -> int:
    """:func:`latest_version` of a table the caller knows exists."""
    version = latest_version(spark, table)
    assert version is not None, table
    return version
