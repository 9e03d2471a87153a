"""SQL pieces the services share: quoted columns, string literals and Delta tables pinned
at a version (``VERSION AS OF``), built by sqlglot, never by pasting user text."""

from __future__ import annotations

import sqlglot
from pyspark.sql import SparkSession
from sqlglot import exp

from lakehouse.tables.versions import latest_version


def col(name: str) -> exp.Column:
    """A quoted column."""
    return exp.column(name, quoted=True)


def string(value: str) -> exp.Literal:
    """A string literal (escaped by sqlglot)."""
    return exp.Literal.string(value)


def pinned_table(schema: str, table: str, version: int) -> exp.Table:
    """``schema.table VERSION AS OF version`` (names come from specs, never from users)."""
    sql = f"SELECT 1 FROM `{schema}`.`{table}` VERSION AS OF {int(version)}"  # noqa: S608
    found = sqlglot.parse_one(sql, read="spark").find(exp.Table)
    assert found is not None
    return found


def delta_version(spark: SparkSession, name: str) -> int:
    """The latest version of a Delta table (0 for an empty history)."""
    return latest_version(spark, name) or 0
