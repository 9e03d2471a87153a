"""Free-text notes -> one record per file, decoded from UTF-8 or GB18030 (Spark functions).

A note declares no charset: valid UTF-8 (a BOM is dropped) is read as UTF-8, otherwise a
lossless GB18030 decoding is used; bytes that are neither are quarantined (LH-ING-011).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.sources.encoding import decode_gb18030, is_utf8, strip_utf8_bom
from lakehouse.sources.records import LINEAGE

NOTE_COLUMNS = ("encoding", "text")


def parse_notes(files: DataFrame) -> DataFrame:
    """Files -> records: the decoded note, or LH-ING-011 when no charset fits."""
    body = strip_utf8_bom(F.col("content"))
    gb = decode_gb18030(F.col("content"))
    encoding = F.when(is_utf8(body), "UTF-8").when(gb.isNotNull(), "GB18030")
    text = F.when(encoding == "UTF-8", body.cast("string")).when(encoding == "GB18030", gb)
    return files.select(
        *LINEAGE,
        F.lit(0).cast("long").alias("record_index"),
        F.col("content").alias("raw_bytes"),
        F.when(encoding.isNull(), ErrorCode.ENCODING_UNDETECTED.name).alias("error_name"),
        F.lit(None).cast("string").alias("error_reason"),
        F.lit(None).cast("string").alias("error_found"),
        F.lit(None).cast("string").alias("error_expected"),
        encoding.alias("encoding"),
        text.alias("text"),
    )
