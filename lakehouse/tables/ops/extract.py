"""``ops.extract_watermarks``: how far watermark (JDBC) extraction has read each source table."""

from __future__ import annotations

from pyspark.sql.types import LongType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

EXTRACT_WATERMARKS = TableSpec(
    name="ops.extract_watermarks",
    comment="High watermark of every table extracted from a source database: the largest "
    "watermark value (updated_at) landed in bronze. Written only after the table's bronze "
    "commit, so a run killed in between re-reads (and its insert-only MERGE writes nothing "
    "twice). The next run reads rows with updated_at > high_watermark - ingest.lookback_days.",
    columns=(
        column("source_system", StringType(), "Source system, e.g. his.", nullable=False),
        column("institution_code", StringType(), "Institution of the database.", nullable=False),
        column("source_table", StringType(), "Table of the source database.", nullable=False),
        column(
            "high_watermark",
            TimestampType(),
            "Largest watermark value landed so far (never moves back); null before any row.",
        ),
        column("rows_read", LongType(), "Rows the last run read from the table."),
        column("rows_new", LongType(), "Row versions the last run added to bronze."),
        column("run_id", StringType(), "Run (ops.job_runs) that last advanced the watermark."),
        column("recorded_at", TimestampType(), "When this row was written."),
    ),
    keys=("source_system", "institution_code", "source_table"),
)
