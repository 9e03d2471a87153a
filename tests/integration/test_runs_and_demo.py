"""Run recording in ops.job_runs and the demo's foundation stage, on the shared session."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import demo
from lakehouse import __version__
from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.runs import job_run
from lakehouse.settings import Settings


def _run_row(spark: SparkSession, run_id: str) -> dict[str, object]:
    rows = spark.table("ops.job_runs").where(f"run_id = '{run_id}'").collect()
    assert len(rows) == 1  # recorded once, by a blind append of its fresh UUID4
    return rows[0].asDict()


def test_a_succeeding_run_is_recorded_with_its_counts(
    spark: SparkSession, settings: Settings, unique: str
) -> None:
    with job_run(spark, settings, f"test.ok_{unique}") as run:
        run.count("rows", 3)
        run.count("rows", 2)
    row = _run_row(spark, run.run_id)
    assert row["job"] == f"test.ok_{unique}"
    assert row["status"] == "succeeded"
    assert row["counts"] == {"rows": 5}
    assert row["error_code"] is None
    assert row["error_message"] is None
    assert row["finished_at"] >= row["started_at"]  # type: ignore[operator]
    assert row["duration_s"] >= 0  # type: ignore[operator]
    assert (row["lakehouse_version"], row["spark_master"]) == (__version__, settings.spark.master)
    last = DeltaTable.forName(spark, "ops.job_runs").history(1).first()
    assert last is not None
    assert (last["operation"], last["isBlindAppend"]) == ("WRITE", True)


def test_a_failing_run_is_recorded_with_its_code_and_reraised(
    spark: SparkSession, settings: Settings, unique: str
) -> None:
    with (
        pytest.raises(LakehouseError) as info,
        job_run(spark, settings, f"test.bad_{unique}") as run,
    ):
        raise error(ErrorCode.TABLE_NOT_FOUND, table="silver.nothing")
    assert info.value.code is ErrorCode.TABLE_NOT_FOUND
    row = _run_row(spark, run.run_id)
    assert (row["job"], row["status"]) == (f"test.bad_{unique}", "failed")
    assert row["error_code"] == "LH-TBL-007"
    assert row["error_message"] == info.value.render()

    with pytest.raises(ZeroDivisionError), job_run(spark, settings, f"test.crash_{unique}") as run:
        _ = 1 / 0
    assert _run_row(spark, run.run_id)["error_code"] == ErrorCode.JOB_FAILED.id


def test_foundation_stage_creates_every_table_idempotently(
    spark: SparkSession, settings: Settings
) -> None:
    first = demo.run(spark, settings, stages=["foundation"])
    again = demo.run(spark, settings, stages=["foundation"])
    assert first.stages[0].counts["tables"] == again.stages[0].counts["tables"] >= 1
    assert again.stages[0].counts.get("tables_created", 0) == 0
    assert spark.catalog.tableExists("ops.job_runs")
    jobs = [
        r["job"] for r in spark.table("ops.job_runs").where("job = 'demo.foundation'").collect()
    ]
    assert len(jobs) >= 2


def test_unknown_stage_is_a_usage_error() -> None:
    with pytest.raises(LakehouseError) as info:
        demo.select_stages(["nope"])
    assert info.value.code is ErrorCode.UNKNOWN_STAGE


def test_the_backup_job_is_a_demo_stage_recorded_as_job_backup(
    spark: SparkSession, settings: Settings, unique: str, tmp_path: Path
) -> None:
    from jobs import backup as backup_job

    names = [s.name for s in demo.STAGES]
    assert names.index("deid") < names.index("backup") < names.index("notebooks")
    # `location` is a keyword of Delta's SQL grammar (OMOP's gold.location): names are quoted
    table = f"bk_{unique}.location"
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS bk_{unique}")
    spark.range(3).write.format("delta").saveAsTable(table)
    cfg = settings.model_copy(
        update={"backup": settings.backup.model_copy(update={"destination": tmp_path})}
    )
    report = backup_job.run(spark, cfg, tables=[table])
    assert (report.kind, report.tables) == ("full", 1)
    assert (report.path / "manifest.json").is_file()
    row = (
        spark.table("ops.job_runs")
        .where("job = 'backup'")
        .orderBy(F.col("started_at").desc())
        .first()
    )
    assert row is not None
    assert row["status"] == "succeeded"
    assert row["counts"]["tables"] == 1
