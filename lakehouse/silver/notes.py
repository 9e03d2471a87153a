"""Free-text notes (``bronze.notes_documents``) -> ``silver.note``.

The notes export names each file ``<note type>_<visit number>.<ext>`` (progress, nursing,
radiology...): the note id is the file stem, the encounter its visit number, and the patient
is resolved through the encounter by the silver job. The language is Chinese when at least
20% of the characters are Han; the recording time and the signing clinician are read from
the lines the note templates write (``记录时间：`` / ``Date:``, ``医师签名：`` / ``Signed:``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.silver.base import SilverOutput, blank_to_null
from lakehouse.silver.conform import parse_timestamp

_STEM = r"([^/]+?)(?:\.[^./]*)?$"
_NAME = r"^([A-Za-z]+)_(.+)$"
_WHEN = (
    r"(?:记录时间|检查时间|Date|Recorded)\s*[:：]\s*"
    r"(\d{4}[-/]\d{1,2}[-/]\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?)"
)
_AUTHOR = r"(?:医师签名|签名|报告医师|Signed|Signature)\s*[:：]\s*([^\s，,]+)"
HAN_SHARE_ZH = 0.2


def transform_notes(bronze: DataFrame) -> SilverOutput:
    """One silver.note row per bronze note."""
    text = F.col("text")
    stem = F.regexp_extract(F.col("file_path"), _STEM, 1)
    han = F.length(F.regexp_replace(text, r"[^\p{IsHan}]", ""))
    share = han / F.greatest(F.length(text), F.lit(1))
    when_text = F.regexp_extract(text, _WHEN, 1)
    first_line = F.regexp_extract(text, r"^\s*([^\r\n]*)", 1)
    rows = bronze.select(
        F.col("institution_code"),
        F.lit("notes").alias("source_system"),
        stem.alias("note_id"),
        blank_to_null(F.regexp_extract(stem, _NAME, 2)).alias("encounter_id"),
        F.lower(blank_to_null(F.regexp_extract(stem, _NAME, 1))).alias("note_type"),
        blank_to_null(first_line).alias("note_title"),
        F.when(share >= HAN_SHARE_ZH, "zh").otherwise("en").alias("language"),
        text.alias("note_text"),
        F.length(text).alias("char_count"),
        blank_to_null(F.regexp_extract(text, _AUTHOR, 1)).alias("author_name"),
        parse_timestamp(when_text).alias("recorded_at"),
        blank_to_null(when_text).alias("recorded_at_source"),
        F.col("file_sha256").alias("bronze_file_sha256"),
        F.col("record_index").alias("bronze_record_index"),
        F.coalesce(parse_timestamp(when_text), F.col("ingested_at")).alias("source_updated_at"),
        F.lit(False).alias("is_deleted"),
    )
    out = SilverOutput()
    out.add("silver.note", rows.where(F.col("note_text").isNotNull()))
    return out
