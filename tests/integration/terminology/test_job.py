"""jobs.terminology: the demo stage records its run and loads nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs import terminology as terminology_job
from lakehouse.errors import ErrorCode, LakehouseError


def test_stage_is_recorded_and_idempotent(spark: Any, settings: Any, demo_vocab: Any) -> None:
    report = terminology_job.run(spark, settings)
    assert report.counts()["editions_unchanged"] == 1
    assert report.counts().get("editions_loaded", 0) == 0
    run = spark.table("ops.job_runs").where(F.col("run_id") == report.run_id).first()
    assert run is not None
    assert (run["job"], run["status"]) == ("terminology.demo", "succeeded")
    assert "terminology run" in terminology_job.describe(report)


def test_bad_requests_are_catalogued(spark: Any, settings: Any, tmp_path: Path) -> None:
    with pytest.raises(LakehouseError) as exc:
        terminology_job.run(spark, settings, kind="snomed-zh")
    assert exc.value.code is ErrorCode.VOCAB_UNKNOWN
    with pytest.raises(LakehouseError) as exc:
        terminology_job.run(spark, settings, kind="codes")
    assert exc.value.code is ErrorCode.VOCAB_FILE_INVALID
    f = tmp_path / "codes.csv"
    f.write_text("code,name\nA,甲\n", encoding="utf-8")
    with pytest.raises(LakehouseError) as exc:
        terminology_job.run(spark, settings, kind="codes", path=f, edition="e1")
    assert exc.value.code is ErrorCode.VOCAB_UNKNOWN  # --vocabulary missing
