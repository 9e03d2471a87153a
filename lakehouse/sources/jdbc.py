"""Reading tables of a source database over JDBC: watermark ranges, parallel reads, row hashes.

Dialect-neutral by design: the database only ever runs ``SELECT`` statements this module
writes (a ``COUNT/MIN/MAX`` of the watermark column, the rows above a watermark, the key
column), and every value is converted by Spark, not by the driver:

- date and timestamp columns are fetched as strings (``customSchema``) and cast by Spark in
  the session time zone. Drivers disagree on them (sqlite-jdbc reads ``.123456`` as 123456
  milliseconds and cannot read a plain date), strings do not. Wall times stay wall times.
- parallel reads split the watermark range: the query exposes the watermark column a second
  time as ``lh_watermark`` (typed by the driver), which is Spark's ``partitionColumn``,
  with the bounds from the ``MIN/MAX`` query; ``numPartitions`` from settings.
- the row hash is SHA-256 over a canonical string of the typed values
  (:func:`row_sha256`), so the same row hashes alike from SQLite and PostgreSQL.

The URL may carry credentials: it is never logged nor put in an error; errors name the
dialect and a classified reason only (``LH-JDB-*``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, TimestampType

from lakehouse.errors import ErrorCode, LakehouseError, error

logger = logging.getLogger(__name__)

#: Separator of the canonical row string and the marker of a null value in it.
FIELD_SEPARATOR = "\u001f"
NULL_MARKER = "\u0000"
#: The watermark column a second time, typed by the driver: Spark's partition column.
PARTITION_COLUMN = "lh_watermark"
#: Marker column of :func:`typed_rows`: names of columns whose value could not be cast.
UNREADABLE = "lh_unreadable"
TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss.SSSSSS"

DRIVERS = {"sqlite": "org.sqlite.JDBC", "postgresql": "org.postgresql.Driver"}
_STRING = StringType()
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class JdbcSource:
    """A source database: its JDBC URL (secret), dialect, driver class and properties."""

    url: str = field(repr=False)
    dialect: str
    driver: str
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    fetch_size: int = 1000


@dataclass(frozen=True)
class Bounds:
    """Rows above a watermark and the lowest and highest watermark value among them."""

    rows: int
    low: str | None
    high: str | None


def jdbc_source(
    url: str,
    *,
    setting: str,
    user: str | None = None,
    password: str | None = None,
    driver: str | None = None,
    fetch_size: int = 1000,
    properties: Mapping[str, str] | None = None,
) -> JdbcSource:
    """Check ``url`` (``jdbc:<dialect>:...``) and pick the driver; errors name ``setting``."""
    match = re.match(r"^jdbc:([a-zA-Z0-9]+):", url)
    if not match:
        raise error(
            ErrorCode.JDBC_URL_INVALID, setting=setting, reason="it must start jdbc:<dialect>:"
        )
    dialect = match.group(1).lower()
    driver = driver or DRIVERS.get(dialect)
    if driver is None:
        raise error(
            ErrorCode.JDBC_URL_INVALID,
            setting=setting,
            reason=f"no driver is known for dialect {dialect}; set his.driver",
        )
    props = dict(properties or {})
    if user:
        props["user"] = user
    if password:
        props["password"] = password
    return JdbcSource(url, dialect, driver, props, fetch_size)


def check_identifier(name: str, *, table: str) -> str:
    """Table and column names go into SQL text: only plain identifiers are accepted."""
    if not _IDENTIFIER.match(name):
        raise error(ErrorCode.JDBC_TABLE_MISSING, table=table, name="source")
    return name


def _reader(spark: SparkSession, src: JdbcSource) -> DataFrameReader:
    reader = (
        spark.read.format("jdbc")
        .option("url", src.url)
        .option("driver", src.driver)
        .option("fetchsize", str(src.fetch_size))
    )
    for key, value in src.properties.items():
        reader = reader.option(key, value)
    return reader


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``jdbc:sqlite:`` URL (None for in-memory databases)."""
    rest = url.split(":", 2)[2].split("?", 1)[0]
    rest = rest.removeprefix("file:")
    if not rest or rest.startswith(":memory:") or "mode=memory" in url:
        return None
    return Path(rest)


def _reason(exc: BaseException) -> str:
    """A classified reason for a driver failure: never the driver's text (it may hold the URL)."""
    text = f"{exc}\n{getattr(exc, '_stackTrace', '')}".lower()
    for needle, reason in (
        ("connection refused", "connection refused"),
        ("unknownhost", "unknown host"),
        ("name or service not known", "unknown host"),
        ("timed out", "connection timed out"),
        ("timeout", "connection timed out"),
        ("password authentication failed", "authentication failed"),
        ("authentication", "authentication failed"),
        ("no suitable driver", "no JDBC driver for the URL on the class path"),
        ("classnotfoundexception", "the JDBC driver class is not on the class path"),
        ("unable to open database", "the database file cannot be opened"),
        ("database", "the database does not exist or refused the connection"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


def _unreachable(src: JdbcSource, exc: BaseException) -> LakehouseError:
    return error(ErrorCode.JDBC_UNREACHABLE, name=src.dialect, reason=_reason(exc))


def probe(spark: SparkSession, src: JdbcSource) -> None:
    """Connect once (``SELECT 1``): an unreachable database fails here with ``LH-JDB-001``."""
    if src.dialect == "sqlite":
        path = _sqlite_file(src.url)
        if path is not None and not path.is_file():  # the driver would create an empty one
            raise error(
                ErrorCode.JDBC_UNREACHABLE,
                name=src.dialect,
                reason="the database file does not exist",
            )
    try:
        _reader(spark, src).option("query", "SELECT 1 AS one").load()
    except Exception as exc:  # Py4J carries every JVM failure
        raise _unreachable(src, exc) from None


def source_columns(spark: SparkSession, src: JdbcSource, table: str) -> list[str]:
    """Column names of ``table`` (lower case), read from the driver's metadata (no rows)."""
    check_identifier(table, table=table)
    try:
        schema = _reader(spark, src).option("dbtable", table).load().schema
    except Exception as exc:
        reason = _reason(exc)
        if reason in {"connection refused", "unknown host", "connection timed out"}:
            raise _unreachable(src, exc) from None
        raise error(ErrorCode.JDBC_TABLE_MISSING, table=table, name=src.dialect) from None
    return [f.name.lower() for f in schema.fields]


def timestamp_literal(src: JdbcSource, wall_time: str) -> str:
    """SQL literal of a wall time ``yyyy-MM-dd HH:mm:ss.ffffff`` in ``src``'s dialect."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?", wall_time):
        raise ValueError("not a wall time")
    if src.dialect == "sqlite":  # SQLite keeps datetimes as ISO text: compared as strings
        return f"'{wall_time}'"
    if src.dialect in {"sqlserver", "jtds"}:
        return f"CAST('{wall_time}' AS DATETIME2)"
    return f"TIMESTAMP '{wall_time}'"


def _where(src: JdbcSource, watermark: str, since: str | None) -> str:
    return f" WHERE {watermark} > {timestamp_literal(src, since)}" if since else ""


def _select(columns: str, table: str, where: str) -> str:
    """``SELECT``: identifiers passed check_identifier, ``where`` holds a validated literal."""
    return f"SELECT {columns} FROM {check_identifier(table, table=table)}{where}"  # noqa: S608


def _load(reader: DataFrameReader, src: JdbcSource, table: str) -> DataFrame:
    try:
        return reader.load()
    except Exception as exc:
        reason = _reason(exc)
        if reason in {"connection refused", "unknown host", "connection timed out"}:
            raise _unreachable(src, exc) from None
        raise error(ErrorCode.JDBC_TABLE_MISSING, table=table, name=src.dialect) from None


def bounds(
    spark: SparkSession, src: JdbcSource, table: str, watermark: str, since: str | None
) -> Bounds:
    """``COUNT``, ``MIN`` and ``MAX`` of the watermark above ``since``, run by the database."""
    check_identifier(watermark, table=table)
    aggregates = f"COUNT(*) AS n, MIN({watermark}) AS lo, MAX({watermark}) AS hi"
    query = _select(aggregates, table, _where(src, watermark, since))
    reader = _reader(spark, src).option("query", query)
    reader = reader.option("customSchema", "n LONG, lo STRING, hi STRING")
    row = _load(reader, src, table).first()  # one row
    assert row is not None
    return Bounds(int(row["n"] or 0), row["lo"], row["hi"])


def _fetch_type(c: StructField) -> str:
    """Type Spark fetches a column as: dates and timestamps as strings (see module doc)."""
    if isinstance(c.dataType, (DateType, TimestampType)):
        return "STRING"
    return c.dataType.simpleString().upper()


def read_rows(
    spark: SparkSession,
    src: JdbcSource,
    table: str,
    columns: Sequence[StructField],
    *,
    watermark: str,
    since: str | None,
    span: Bounds,
    partitions: int,
) -> DataFrame:
    """Rows of ``table`` with ``watermark > since`` (all rows when ``since`` is None).

    Parallel: ``partitions`` ranges of the watermark between ``span.low`` and ``span.high``
    (rows outside, e.g. changed since the bounds query, fall in the first or last range).
    Dates and timestamps come back as strings: :func:`typed_rows` casts them.
    """
    names = [check_identifier(c.name, table=table) for c in columns]
    check_identifier(watermark, table=table)
    selected = f"{', '.join(names)}, {watermark} AS {PARTITION_COLUMN}"
    query = f"({_select(selected, table, _where(src, watermark, since))}) lh_src"
    reader = _reader(spark, src).option("dbtable", query)
    reader = reader.option("customSchema", ", ".join(f"{c.name} {_fetch_type(c)}" for c in columns))
    if partitions > 1 and span.low is not None and span.high is not None and span.low < span.high:
        reader = (
            reader.option("partitionColumn", PARTITION_COLUMN)
            .option("lowerBound", span.low)
            .option("upperBound", span.high)
            .option("numPartitions", str(partitions))
        )
    return _load(reader, src, table).drop(PARTITION_COLUMN)


def read_keys(
    spark: SparkSession,
    src: JdbcSource,
    table: str,
    key: str,
    *,
    watermark: str,
    partitions: int,
) -> DataFrame:
    """Every key of ``table`` (a key-only scan, parallel over the watermark's range)."""
    span = bounds(spark, src, table, watermark, None)
    return read_rows(
        spark,
        src,
        table,
        [StructField(key, _STRING)],
        watermark=watermark,
        since=None,
        span=span,
        partitions=partitions,
    )


def typed_rows(raw: DataFrame, columns: Sequence[StructField]) -> DataFrame:
    """Cast the fetched columns to their spec types; ``lh_unreadable`` lists failed casts."""
    out: list[Column] = []
    failed: list[Column] = []
    for c in columns:
        converted = _fetch_type(c) == "STRING" and c.dataType != _STRING
        # try_cast: under ANSI mode (Spark 4's default) a bad value would fail the query.
        value = F.col(c.name).try_cast(c.dataType) if converted else F.col(c.name)
        out.append(value.alias(c.name))
        if converted:
            failed.append(F.when(F.col(c.name).isNotNull() & value.isNull(), F.lit(c.name)))
    flags = (
        F.filter(F.array(*failed), lambda x: x.isNotNull())
        if failed
        else F.array().cast("array<string>")
    )
    return raw.select(*out, flags.alias(UNREADABLE))


def canonical(c: StructField) -> Column:
    """The column as canonical text: timestamps to the microsecond, dates ISO, NUL for null."""
    if isinstance(c.dataType, TimestampType):
        text = F.date_format(F.col(c.name), TIMESTAMP_FORMAT)
    elif isinstance(c.dataType, DateType):
        text = F.date_format(F.col(c.name), "yyyy-MM-dd")
    else:
        text = F.col(c.name).cast("string")
    return F.coalesce(text, F.lit(NULL_MARKER))


def row_sha256(columns: Sequence[StructField]) -> Column:
    """SHA-256 (hex) of the canonical row: the columns' texts joined by U+001F."""
    return F.sha2(F.concat_ws(FIELD_SEPARATOR, *[canonical(c) for c in columns]), 256)
