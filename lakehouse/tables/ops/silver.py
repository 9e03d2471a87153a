"""``ops.silver_progress`` (how far silver has read each bronze table) and
``ops.silver_rejects`` (bronze records that could not become silver rows)."""

from __future__ import annotations

from pyspark.sql.types import LongType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

SILVER_PROGRESS = TableSpec(
    name="ops.silver_progress",
    comment="Per bronze table, the last Delta version the silver job has turned into silver "
    "rows. Written after that table's silver MERGEs: a killed run re-reads the same changes "
    "and its MERGEs find them applied.",
    columns=(
        column("bronze_table", StringType(), "Bronze table read.", nullable=False),
        column("bronze_version", LongType(), "Last bronze Delta version processed."),
        column("mode", StringType(), "changes (change data feed) or snapshot (full read)."),
        column("rows_read", LongType(), "Bronze rows read by the run."),
        column("run_id", StringType(), "ops.job_runs run that processed it."),
        column("processed_at", TimestampType(), "When."),
    ),
    keys=("bronze_table",),
)

SILVER_REJECTS = TableSpec(
    name="ops.silver_rejects",
    comment="Bronze records a silver transform could not turn into rows, with the catalogued "
    "code (LH-SLV-...). The raw record stays in bronze (keys point at it); a fixed transform "
    "reprocesses it with `lakehouse silver --full`.",
    columns=(
        column("bronze_table", StringType(), "Bronze table of the record.", nullable=False),
        column(
            "bronze_file_sha256",
            StringType(),
            "file_sha256 (row_sha256 for database rows) of the record.",
            nullable=False,
        ),
        column(
            "bronze_record_index",
            LongType(),
            "record_index of the record; -1 for database rows.",
            nullable=False,
        ),
        column("error_code", StringType(), "Catalogued error code.", nullable=False),
        column("error_name", StringType(), "Name of the error code."),
        column("detail", StringType(), "What was wrong, without patient data."),
        column("institution_code", StringType(), "Institution of the record."),
        column("source_system", StringType(), "Source system of the record."),
        column("run_id", StringType(), "Run that found it."),
        column("rejected_at", TimestampType(), "When."),
    ),
    keys=("bronze_table", "bronze_file_sha256", "bronze_record_index", "error_code"),
    volatile=("run_id", "rejected_at"),
    cluster_by=("bronze_table",),
)
