"""The lineage columns every bronze row carries back to its raw record."""

from __future__ import annotations

from pyspark.sql.types import DateType, LongType, StringType, StructField, TimestampType

from lakehouse.tables.spec import column

#: Merge keys of every bronze table: the content of the file and the record's place in it.
RECORD_KEYS = ("file_sha256", "record_index")
#: Layout of every bronze table: tenants and ingest days are the common filters.
BRONZE_CLUSTERING = ("institution_code", "ingest_date")


def lineage_columns() -> tuple[StructField, ...]:
    """Source system, institution, file, content hash, record index, run and time."""
    return (
        column(
            "file_sha256",
            StringType(),
            "SHA-256 (hex) of the landed file's bytes: the file's identity.",
            nullable=False,
        ),
        column(
            "record_index",
            LongType(),
            "0-based position of the record among the file's records.",
            nullable=False,
        ),
        column(
            "source_system",
            StringType(),
            "Source system of the landing folder: lis, emr, notes, pacs, fhir or csv.",
            nullable=False,
        ),
        column(
            "institution_code",
            StringType(),
            "Institution (alliance member) the file was delivered by.",
            nullable=False,
        ),
        column("file_path", StringType(), "Path of the file when it was landed.", nullable=False),
        column("ingest_run_id", StringType(), "ops.job_runs run that landed the record."),
        column("ingested_at", TimestampType(), "When the record was landed."),
        column("ingest_date", DateType(), "Date part of ingested_at (clustering column)."),
    )
