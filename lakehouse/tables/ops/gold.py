"""``ops.omop_ids`` (OMOP ids, assigned once per natural key) and ``ops.gold_progress``
(how far the gold job has read each silver table)."""

from __future__ import annotations

from pyspark.sql.types import LongType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

OMOP_IDS = TableSpec(
    name="ops.omop_ids",
    comment="The integer id of every OMOP row, assigned once per (OMOP table, natural key) "
    "and never reassigned: reruns, late corrections and rebuilds keep ids stable. New keys "
    "get ids above the table's current maximum.",
    columns=(
        column("omop_table", StringType(), "OMOP table (person, measurement...).", nullable=False),
        column(
            "natural_key",
            StringType(),
            "What identifies the row across runs: the silver record key "
            "('<institution>|<source system>|<record id>'), or the person id of the master "
            "patient index, or a vocabulary code.",
            nullable=False,
        ),
        column("omop_id", LongType(), "The assigned id.", nullable=False),
        column("run_id", StringType(), "Run that assigned it."),
        column("assigned_at", TimestampType(), "When it was assigned."),
    ),
    keys=("omop_table", "natural_key"),
    cluster_by=("omop_table", "natural_key"),
)

GOLD_PROGRESS = TableSpec(
    name="ops.gold_progress",
    comment="Per silver (or vocab) table, the last Delta version the gold job has turned "
    "into OMOP rows. Written after the OMOP MERGEs it feeds: a killed run re-reads the "
    "same changes and its MERGEs find them applied.",
    columns=(
        column("source_table", StringType(), "Silver or vocab table read.", nullable=False),
        column("source_version", LongType(), "Last Delta version processed."),
        column("mode", StringType(), "changes (change data feed) or snapshot (full read)."),
        column("rows_read", LongType(), "Rows read by the run."),
        column("run_id", StringType(), "ops.job_runs run that processed it."),
        column("processed_at", TimestampType(), "When."),
    ),
    keys=("source_table",),
)
