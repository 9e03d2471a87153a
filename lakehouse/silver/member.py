"""Column helpers shared by the member-site transforms (FHIR R4 and CSV exports).

Lineage, value domains (GB/T 2261.1 sex), rejects and reference parsing, as Spark column
expressions. Nothing here reads data or holds a session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.silver.base import blank_to_null

#: Source text of a sex -> GB/T 2261.1 code (0 unknown, 1 male, 2 female, 9 unspecified).
SEX_CODES = {
    "male": "1",
    "m": "1",
    "男": "1",
    "男性": "1",
    "1": "1",
    "female": "2",
    "f": "2",
    "女": "2",
    "女性": "2",
    "2": "2",
    "unknown": "0",
    "u": "0",
    "未知": "0",
    "0": "0",
    "other": "9",
    "o": "9",
    "未说明": "9",
    "9": "9",
}


def sex_code(source: Column) -> Column:
    """GB/T 2261.1 code of a sex as written; null when the source left it empty.

    A value the table does not know becomes ``9`` (未说明的性别): it was stated, not understood.
    """
    text = F.lower(blank_to_null(source))
    mapping = F.create_map(*[F.lit(x) for kv in SEX_CODES.items() for x in kv])
    return F.when(text.isNotNull(), F.coalesce(F.try_element_at(mapping, text), F.lit("9")))


def lineage(updated_at: Column, *, deleted: Column | None = None) -> list[Column]:
    """The lineage columns a transform sets (``bronze_table``, run and time are the job's)."""
    return [
        F.col("file_sha256").alias("bronze_file_sha256"),
        F.col("record_index").cast("long").alias("bronze_record_index"),
        updated_at.alias("source_updated_at"),
        F.coalesce(deleted if deleted is not None else F.lit(False), F.lit(False)).alias(
            "is_deleted"
        ),
    ]


def _printf(code: ErrorCode, params: tuple[str, ...]) -> str:
    """The code's template with ``{name}`` placeholders as ``format_string`` positions."""
    text = code.value.template.replace("%", "%%")
    for pos, name in enumerate(params, start=1):
        text = text.replace("{" + name + "}", f"%{pos}$s")
    return re.sub(r"\{\w+\}", "?", text)


def reject_cases(
    df: DataFrame,
    error_name: Column,
    cases: Mapping[ErrorCode, Mapping[str, Column]],
    **common: Column,
) -> DataFrame:
    """Rows of ``df`` (bronze-shaped) as rejects; ``error_name`` names each row's code.

    ``common`` and ``cases[code]`` fill the code's message template. Parameters must be
    names of :data:`lakehouse.errors.SAFE_PARAMS` and never carry patient values: resource
    types, element names, file names and record numbers.
    """
    detail: Column = F.lit(None).cast("string")
    code_id: Column = F.lit(None).cast("string")
    for code, extra in cases.items():
        params = {**common, **extra}
        names = tuple(n for n in code.params() if n in params)
        text = F.format_string(
            _printf(code, names),
            *[F.coalesce(params[n].cast("string"), F.lit("?")) for n in names],
        )
        hit = error_name == code.name
        detail = F.when(hit, text).otherwise(detail)
        code_id = F.when(hit, F.lit(code.id)).otherwise(code_id)
    return df.select(
        F.col("institution_code"),
        F.col("source_system"),
        F.col("file_sha256").alias("bronze_file_sha256"),
        F.col("record_index").cast("long").alias("bronze_record_index"),
        code_id.alias("error_code"),
        error_name.alias("error_name"),
        detail.alias("detail"),
    )


def file_name(path: Column) -> Column:
    """The last path element of a file path (rejects name files, never folders)."""
    return F.element_at(F.split(path, "/"), -1)


def first_non_null(values: Iterable[Column]) -> Column:
    """``coalesce`` over blank-to-null values."""
    return F.coalesce(*[blank_to_null(v) for v in values])
