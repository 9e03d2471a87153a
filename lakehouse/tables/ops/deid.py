"""``ops.deid_snapshots``: materializations of de-identified views for model training."""

from __future__ import annotations

from pyspark.sql.types import LongType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

DEID_SNAPSHOTS = TableSpec(
    name="ops.deid_snapshots",
    comment="One row per materialization of a de-identified view into a Delta table: the "
    "source and target versions a training run can time-travel to.",
    columns=(
        column("run_id", StringType(), "Run of the materialization.", nullable=False),
        column("created_at", TimestampType(), "When it was written.", nullable=False),
        column("source_table", StringType(), "Table the view de-identifies.", nullable=False),
        column("source_version", LongType(), "Delta version of the source table read."),
        column("view", StringType(), "De-identified view materialized.", nullable=False),
        column("target_table", StringType(), "Delta table written.", nullable=False),
        column("target_version", LongType(), "Delta version of the target after the write."),
        column("rows_written", LongType(), "Rows inserted or updated by the MERGE."),
        column("rows_unkeyed", LongType(), "Rows left out because a merge key was null."),
        column("policy_version", LongType(), "Version of the de-identification policy."),
    ),
    append_only=True,
    change_data_feed=False,
)
