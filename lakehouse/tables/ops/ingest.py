"""``ops.landing_files`` (the file manifest), ``ops.landing_intents`` (files a run is about to
land) and ``ops.ingest_runs`` (one report per run)."""

from __future__ import annotations

from pyspark.sql.types import DoubleType, LongType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

LANDING_FILES = TableSpec(
    name="ops.landing_files",
    comment="Manifest of every landing file taken by ingestion: where it was, its size, "
    "modification time and SHA-256, and whether it was landed, quarantined or skipped as a "
    "duplicate. Written after the file's records, so a file missing here is retaken.",
    columns=(
        column("file_path", StringType(), "Path of the file.", nullable=False),
        column("file_sha256", StringType(), "SHA-256 (hex) of its bytes.", nullable=False),
        column("source_system", StringType(), "Source system of the landing folder."),
        column("institution_code", StringType(), "Institution that delivered the file."),
        column("size_bytes", LongType(), "File size in bytes."),
        column("modified_at", TimestampType(), "File modification time when taken."),
        column(
            "status",
            StringType(),
            "landed (records written; some may be quarantined), quarantined (the whole file) "
            "or duplicate (same SHA-256 as an earlier file; nothing written).",
        ),
        column("duplicate_of", StringType(), "Path of the earlier file with the same content."),
        column("records_landed", LongType(), "Records of the file written to bronze."),
        column("records_quarantined", LongType(), "Records of the file quarantined."),
        column(
            "findings_quarantined",
            LongType(),
            "File-level findings quarantined besides the records (an HL7 batch trailer whose "
            "count disagrees with the messages found).",
        ),
        column("run_id", StringType(), "Run that took the file (first seen)."),
        column("recorded_at", TimestampType(), "When the file was recorded here."),
    ),
    keys=("file_path", "file_sha256"),
    cluster_by=("source_system", "institution_code"),
)

LANDING_INTENTS = TableSpec(
    name="ops.landing_intents",
    comment="One row per file a run was about to land, appended before any of its records: "
    "the earliest day a file's records can be stored, so a rerun's insert-only MERGE reads "
    "bronze from that day on instead of the whole table (ADR 0035). A file here and not in "
    "ops.landing_files is one whose run died before the manifest commit.",
    columns=(
        column("run_id", StringType(), "Run that was about to land the file.", nullable=False),
        column("source_system", StringType(), "Source system of the landing folder."),
        column("file_path", StringType(), "Path of the file.", nullable=False),
        column("file_sha256", StringType(), "SHA-256 (hex) of its bytes.", nullable=False),
        column(
            "started_at",
            TimestampType(),
            "When the intent was recorded: before any record of the file was written.",
            nullable=False,
        ),
    ),
    append_only=True,
    cluster_by=("file_sha256",),
)

INGEST_RUNS = TableSpec(
    name="ops.ingest_runs",
    comment="One report row per ingestion run and source: files and records seen, landed, "
    "quarantined, duplicates skipped, bytes and duration. records_seen = records_landed + "
    "records_quarantined + records_unchanged (database sources: rows re-read by the "
    "watermark lookback that bronze already holds).",
    columns=(
        column("run_id", StringType(), "Run id (as in ops.job_runs).", nullable=False),
        column("source_system", StringType(), "Source system landed.", nullable=False),
        column("started_at", TimestampType(), "When the source's landing started."),
        column("duration_s", DoubleType(), "Wall-clock seconds of the source's landing."),
        column("files_seen", LongType(), "Files found in the landing folder."),
        column("files_unchanged", LongType(), "Files already in the manifest; not read."),
        column("files_landed", LongType(), "New files whose records were written."),
        column("files_quarantined", LongType(), "New files quarantined whole (e.g. empty)."),
        column("files_duplicate", LongType(), "New files skipped: content already landed."),
        column("records_seen", LongType(), "Records split from the new files."),
        column("records_landed", LongType(), "Records written to the bronze table."),
        column("records_quarantined", LongType(), "Records written to bronze.quarantine."),
        column(
            "records_unchanged",
            LongType(),
            "Records read again and already in bronze (database sources: the lookback).",
        ),
        column(
            "findings_quarantined",
            LongType(),
            "File-level findings written to bronze.quarantine besides the records (an HL7 "
            "batch trailer whose count disagrees); not part of records_seen.",
        ),
        column("bytes_read", LongType(), "Bytes of the new files read."),
    ),
    append_only=True,
    cluster_by=("source_system", "started_at"),
)
