"""``ops.nlp_progress``: how far the clinical NLP job has read ``silver.note``."""

from __future__ import annotations

from pyspark.sql.types import LongType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

NLP_PROGRESS = TableSpec(
    name="ops.nlp_progress",
    comment="Per source table (silver.note), the last Delta version the clinical NLP job has "
    "turned into gold.note_nlp, silver.note_deid and silver.note_problem rows, and the "
    "pipeline version that did it. Written after those MERGEs: a killed run re-reads the "
    "same changes and its MERGEs find them applied; a new pipeline version reprocesses "
    "every note.",
    columns=(
        column("source_table", StringType(), "Table read (silver.note).", nullable=False),
        column("source_version", LongType(), "Last Delta version processed."),
        column("mode", StringType(), "changes (change data feed) or snapshot (full read)."),
        column("notes_read", LongType(), "Note rows (live and deleted) the run looked at."),
        column(
            "nlp_system",
            StringType(),
            "Pipeline version that processed them (versions of the rule files).",
        ),
        column("run_id", StringType(), "ops.job_runs run that processed it."),
        column("processed_at", TimestampType(), "When."),
    ),
    keys=("source_table",),
)
