"""Character sets, decided from the bytes and checked against what a record declares.

Spark-native: ``is_valid_utf8`` over the bytes cast to a string (no decoding error can
stop a job), ``decode(bytes, 'GB18030')`` for the Chinese national charset, and a round
trip (decode then encode gives back the same bytes) to prove a GB18030 decoding lossless.
Spark 4 admits GB18030 in ``decode``/``encode`` only with ``spark.sql.legacy.javaCharsets``,
and raises on malformed input unless ``spark.sql.legacy.codingErrorAction`` is set (then it
substitutes, which the round trip catches): :func:`charsets_enabled` sets both for the
duration of a landing run and restores them after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from lakehouse.spark import session_conf

LATIN1 = "ISO-8859-1"
_CONF = {
    "spark.sql.legacy.javaCharsets": "true",
    "spark.sql.legacy.codingErrorAction": "true",
}
#: A declared charset name is echoed into error details only when it looks like one.
_CHARSET_NAME = r"^[A-Za-z0-9 /_.:-]{1,24}$"


@contextmanager
def charsets_enabled(spark: SparkSession) -> Iterator[None]:
    """Allow GB18030 in ``decode``/``encode`` (and substitution on malformed input)."""
    with session_conf(spark, _CONF):
        yield


def is_utf8(data: Column) -> Column:
    """Whether binary ``data`` is valid UTF-8."""
    return F.call_function("is_valid_utf8", data.cast("string"))


def is_ascii(data: Column) -> Column:
    """Whether binary ``data`` holds 7-bit bytes only."""
    return ~F.decode(data, LATIN1).rlike("[^\\x00-\\x7F]")


def decode_gb18030(data: Column) -> Column:
    """``data`` decoded as GB18030, or null when the decoding is not lossless."""
    text = F.decode(data, "GB18030")
    return F.when(F.encode(text, "GB18030") == data, text)


def declared_kind(declared: Column) -> Column:
    """Family of a declared charset name: gb18030, latin1, utf8 (also for none declared)."""
    up = F.upper(F.coalesce(declared, F.lit("")))
    return (
        F.when(up.rlike("GB|18030|2312|GBK"), F.lit("gb18030"))
        .when(up.rlike("8859|LATIN"), F.lit("latin1"))
        .otherwise(F.lit("utf8"))
    )


def safe_charset_name(declared: Column, default: str) -> Column:
    """The declared name for an error detail, or ``default`` if absent or odd."""
    return F.when(declared.rlike(_CHARSET_NAME), declared).otherwise(F.lit(default))


def strip_utf8_bom(data: Column) -> Column:
    """``data`` without a leading UTF-8 byte-order mark."""
    bom = F.lit(bytes([0xEF, 0xBB, 0xBF]))
    return F.when(F.substring(data, 1, 3) == bom, F.substring(data, 4, 2**31 - 1)).otherwise(data)
