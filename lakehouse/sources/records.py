"""The shape every source parser returns, and how its records split into bronze and quarantine.

A parser maps a DataFrame of files (:data:`FILE_COLUMNS`) to one row per record: the file's
lineage, ``record_index``, the record's ``raw_bytes`` and either format fields (landed) or an
error (``error_name`` of an :class:`~lakehouse.errors.ErrorCode` plus ``error_reason``,
``error_found``, ``error_expected``: fixed vocabulary, never patient values). The catalogued
message of each error is rendered here, in Spark, from the code's template.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode

#: Columns of the files DataFrame parsers receive.
FILE_COLUMNS = (
    "file_path",
    "file_sha256",
    "source_system",
    "institution_code",
    "size_bytes",
    "content",
)
#: Lineage columns a parser passes through to every record.
LINEAGE = ("file_path", "file_sha256", "source_system", "institution_code")
#: Error columns of a record (all null when the record lands).
ERROR_COLUMNS = ("error_name", "error_reason", "error_found", "error_expected")

_PARAM_ORDER = ("file", "count", "reason", "found", "expected", "names")
#: The codes a quarantined record can carry (LH-ING: files and messages; LH-JDB: database
#: rows). The expressions below map only these: a map or CASE over the whole catalog makes
#: generated code too large for the JVM, and Spark falls back to slower interpreted code.
QUARANTINE_CODES: tuple[ErrorCode, ...] = tuple(
    c for c in ErrorCode if c.id.startswith(("LH-ING-", "LH-JDB-"))
)


def _printf_template(code: ErrorCode) -> str:
    """The code's template as a ``format_string`` pattern over :data:`_PARAM_ORDER`."""
    text = code.value.template.replace("%", "%%")

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        pos = _PARAM_ORDER.index(name) + 1 if name in _PARAM_ORDER else None
        return f"%{pos}$s" if pos else "?"

    return re.sub(r"\{(\w+)\}", sub, text)


def render_detail(codes: Iterable[ErrorCode] | None = None) -> Column:
    """The catalogued message of each record's error (file name only, no directories)."""
    codes = list(QUARANTINE_CODES if codes is None else codes)
    file_name = F.element_at(F.split(F.col("file_path"), "/"), -1)
    args = [
        file_name,
        F.col("record_index").cast("string"),
        F.coalesce(F.col("error_reason"), F.lit("?")),
        F.coalesce(F.col("error_found"), F.lit("?")),
        F.coalesce(F.col("error_expected"), F.lit("?")),
        F.coalesce(F.col("error_reason"), F.lit("?")),
    ]
    expr: Column = F.lit(None).cast("string")
    for code in codes:
        expr = F.when(
            F.col("error_name") == code.name, F.format_string(_printf_template(code), *args)
        ).otherwise(expr)
    return expr


def error_id(codes: Iterable[ErrorCode] | None = None) -> Column:
    """``LH-ING-nnn`` of each record's ``error_name``."""
    chosen = QUARANTINE_CODES if codes is None else tuple(codes)
    mapping = [x for code in chosen for x in (F.lit(code.name), F.lit(code.id))]
    return F.element_at(F.create_map(*mapping), F.col("error_name"))


def no_error() -> list[Column]:
    """The error columns of a landed record."""
    return [F.lit(None).cast("string").alias(c) for c in ERROR_COLUMNS]


def quarantine_rows(records: DataFrame) -> DataFrame:
    """Records with an error, shaped for ``bronze.quarantine`` (lineage added by the caller)."""
    return records.where(F.col("error_name").isNotNull()).select(
        *LINEAGE,
        "record_index",
        "raw_bytes",
        error_id().alias("error_code"),
        F.col("error_name"),
        render_detail().alias("detail"),
    )


def landed_rows(records: DataFrame, columns: Iterable[str]) -> DataFrame:
    """Records without an error, with the lineage and the given format columns."""
    return records.where(F.col("error_name").isNull()).select(*LINEAGE, "record_index", *columns)
