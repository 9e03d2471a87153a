"""``ops.job_runs``: one row per run of a job or demo stage."""

from __future__ import annotations

from pyspark.sql.types import DoubleType, LongType, MapType, StringType, TimestampType

from lakehouse.tables.spec import TableSpec, column

JOB_RUNS = TableSpec(
    name="ops.job_runs",
    comment="One row per run of a job or demo stage: status, timing, counts and error code.",
    columns=(
        column("run_id", StringType(), "Unique id of the run (UUID4).", nullable=False),
        column("job", StringType(), "Job or stage name, e.g. demo.foundation.", nullable=False),
        column("status", StringType(), "running, succeeded or failed.", nullable=False),
        column("started_at", TimestampType(), "When the run started.", nullable=False),
        column("finished_at", TimestampType(), "When the run ended; null while running."),
        column("duration_s", DoubleType(), "Wall-clock seconds of the run."),
        column(
            "counts",
            MapType(StringType(), LongType()),
            "Named counts of the run (records seen, landed, quarantined, rows written...).",
        ),
        column("error_code", StringType(), "Catalogued error code (LH-...) of a failed run."),
        column("error_message", StringType(), "Catalogued message of a failed run (no PHI)."),
        column("lakehouse_version", StringType(), "Version of the code that ran."),
        column("spark_master", StringType(), "Spark master the run used."),
    ),
    keys=("run_id",),
    cluster_by=("job", "started_at"),
)
