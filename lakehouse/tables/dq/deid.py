"""``dq.k_anonymity``: results of ``lakehouse deid check`` (one row per view and run)."""

from __future__ import annotations

from pyspark.sql.types import ArrayType, BooleanType, LongType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

K_ANONYMITY = TableSpec(
    name="dq.k_anonymity",
    comment="k-anonymity of each de-identified view over its quasi-identifiers, per check run.",
    columns=(
        column("run_id", StringType(), "Run of the check (ops.job_runs.run_id).", nullable=False),
        column("checked_at", TimestampType(), "When the view was checked.", nullable=False),
        column("view", StringType(), "De-identified view, deid.<layer>_<table>.", nullable=False),
        column("source_table", StringType(), "Table the view de-identifies.", nullable=False),
        column(
            "quasi_identifiers",
            ArrayType(StringType()),
            "View columns forming the equivalence classes.",
            nullable=False,
        ),
        column("unit", StringType(), "What a class counts: persons (distinct tokens) or rows."),
        column("threshold", LongType(), "Smallest class size accepted (deid.k_threshold)."),
        column("k", LongType(), "Size of the smallest equivalence class; null for an empty view."),
        column("classes", LongType(), "Number of equivalence classes."),
        column("classes_below", LongType(), "Classes smaller than the threshold."),
        column("records", LongType(), "Persons (or rows) in the view."),
        column("records_below", LongType(), "Persons (or rows) in classes below the threshold."),
        column("passed", BooleanType(), "k >= threshold (an empty view passes).", nullable=False),
    ),
    append_only=True,
    change_data_feed=False,
)
