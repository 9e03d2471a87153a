"""``dq.results`` and ``dq.failures``: what every data-quality run found (lakehouse/quality).

Both are append-only: a run is a measurement at one moment over given Delta versions, and
the history of runs is the trend (``lakehouse.quality.trend``). A rerun is a new run with a
new run id; each run writes its failures in one commit and then its results in one commit,
so a run is either wholly in ``dq.results`` or not at all.
"""

from __future__ import annotations

from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, TimestampType

from lakehouse.tables.spec import Phi, TableSpec, column

RESULTS = TableSpec(
    name="dq.results",
    comment="One row per data-quality rule per run (rules of lakehouse/quality/rules/*.yaml "
    "and the OMOP DataQualityDashboard checks): rows checked, rows failing, threshold and "
    "status, with the Delta version of the table read. Append-only; (run_id, rule_id) is "
    "unique.",
    columns=(
        column(
            "run_id", StringType(), "Run of the quality job (ops.job_runs.run_id).", nullable=False
        ),
        column(
            "rule_id",
            StringType(),
            "Rule id (e.g. SLV-ENC-003, DQD-measurement-person_id-isRequired).",
            nullable=False,
        ),
        column("rule_version", IntegerType(), "Version of the rule definition."),
        column("suite", StringType(), "rules (YAML rules) or dqd (OMOP DataQualityDashboard)."),
        column("layer", StringType(), "Layer the rule belongs to: bronze, silver or gold."),
        column("description", StringType(), "What the rule requires (English / Chinese)."),
        column("kahn_context", StringType(), "Kahn context: verification or validation."),
        column(
            "kahn_category",
            StringType(),
            "Kahn category: completeness, conformance, plausibility, uniqueness, timeliness.",
        ),
        column(
            "kahn_subcategory",
            StringType(),
            "Kahn subcategory: value, relational, computational, atemporal, temporal, uniqueness.",
        ),
        column(
            "check_type",
            StringType(),
            "Check type: a template (not_null, foreign_key...) or the DQD check name "
            "(isRequired...).",
        ),
        column(
            "severity", StringType(), "fatal, error, warning, info (rules) or the DQD severity."
        ),
        column(
            "table_name",
            StringType(),
            "Table checked, by its logical name (silver.encounter, gold.measurement).",
        ),
        column("column_name", StringType(), "Column checked, when the rule is about one column."),
        column(
            "table_version",
            LongType(),
            "Delta version of the table read (time travel: the run is reproducible).",
        ),
        column("rows_checked", LongType(), "Rows in the rule's population (its where clause)."),
        column("rows_failing", LongType(), "Rows of the population violating the rule (exact)."),
        column(
            "percent_failing",
            DoubleType(),
            "100 * rows_failing / rows_checked; null when nothing was checked.",
        ),
        column("threshold", DoubleType(), "Percent failing allowed; the rule fails above it."),
        column(
            "threshold_source",
            StringType(),
            "Where the threshold came from: rule (YAML), dqd-csv (the DQD threshold files) "
            "or cdm-spec (derived from gold.omop FIELDS, threshold 0).",
        ),
        column(
            "status",
            StringType(),
            "pass, fail (percent_failing > threshold), error (the check could not run) or "
            "not_applicable (table missing or no rows checked).",
            nullable=False,
        ),
        column(
            "message", StringType(), "Why a check errored or was not applicable (no data values)."
        ),
        column(
            "failures_sampled",
            IntegerType(),
            "Keys of failing rows kept in dq.failures for this rule (at most quality.sample_keys).",
        ),
        column("executed_at", TimestampType(), "When the rule ran."),
        column(
            "duration_ms",
            LongType(),
            "Wall time of the query that ran the rule (shared by the rules of one query).",
        ),
    ),
    append_only=True,
    change_data_feed=False,
    cluster_by=("table_name",),
)

FAILURES = TableSpec(
    name="dq.failures",
    comment="Keys of failing rows, at most quality.sample_keys per rule and run (the exact "
    "count is dq.results.rows_failing): enough to find and fix the records, never a copy of "
    "them. Append-only.",
    columns=(
        column("run_id", StringType(), "Run of the quality job.", nullable=False),
        column("rule_id", StringType(), "Rule the row failed.", nullable=False),
        column("table_name", StringType(), "Table of the failing row (logical name)."),
        column("table_version", LongType(), "Delta version read."),
        column("key_columns", StringType(), "Comma-separated key columns of the table."),
        column(
            "row_key",
            StringType(),
            "JSON object of the failing row's key values (e.g. institution_code, "
            "source_system, encounter_id): identifiers, hence PHI.",
            phi=Phi.IDENTIFIER,
        ),
        column("sample_rank", IntegerType(), "1..N in key order within the rule."),
        column("recorded_at", TimestampType(), "When the failure was recorded."),
    ),
    append_only=True,
    change_data_feed=False,
    cluster_by=("rule_id",),
)
