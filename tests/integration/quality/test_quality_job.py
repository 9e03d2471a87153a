"""jobs.quality: a run is recorded in ops.job_runs and dq.results; fail_on turns failed
rules into LH-DQC-003 after they are recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql.types import LongType, StringType

from jobs import quality as quality_job
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings
from lakehouse.tables.dq.results import RESULTS
from lakehouse.tables.spec import TableSpec, column
from lakehouse.tables.writer import append


def _rules(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(
        f"""
rules:
  - id: PROBE-{table[-6:]}-1
    version: 2
    description: {{en: Values are positive, zh: 数值为正}}
    table: {table}
    layer: bronze
    kahn: {{context: verification, category: plausibility, subcategory: atemporal}}
    severity: error
    threshold: 10
    check: {{type: violated_when, sql: "value <= 0"}}
  - id: PROBE-{table[-6:]}-2
    table: {table}
    layer: bronze
    kahn: {{category: completeness}}
    check: {{type: not_null, column: no_such_column}}
  - id: PROBE-{table[-6:]}-3
    table: {table}
    layer: bronze
    kahn: {{category: conformance, subcategory: relational}}
    check: {{type: foreign_key, columns: [id], ref_table: dq.no_such_table, ref_columns: [id]}}
""",
        encoding="utf-8",
    )
    return path


def test_a_run_is_recorded_and_fail_on_raises_after_recording(
    spark: Any, settings: Settings, unique: str, tmp_path: Path
) -> None:
    spec = TableSpec(
        name=f"dq.q{unique}_probe",
        comment="Probe table of a quality job test.",
        columns=(
            column("id", LongType(), "Id.", nullable=False),
            column("value", LongType(), "A value."),
            column("note", StringType(), "A note."),
        ),
        append_only=True,
    )
    rows = [(i, -1 if i == 0 else i, None) for i in range(5)]
    append(spark, spec, spark.createDataFrame(rows, spec.schema))
    rules = _rules(tmp_path, spec.name)

    report = quality_job.run(spark, settings, layer="bronze", rules=rules, dqd=False)
    (rep,) = report.reports
    first, second, third = rep.results
    assert (first.status, first.rows_checked, first.rows_failing) == ("fail", 5, 1)
    assert first.table_version is not None
    assert second.status == "error"  # an unknown column is reported, not raised
    assert (third.status, third.message) == (
        "not_applicable",
        "reference table dq.no_such_table does not exist",
    )
    stored = spark.table(RESULTS.name).where(f"run_id = '{report.run_id}'").collect()
    assert {(r["rule_id"], r["status"], r["rule_version"]) for r in stored} == {
        (first.rule.id, "fail", 2),
        (second.rule.id, "error", 1),
        (third.rule.id, "not_applicable", 1),
    }
    runs = spark.table("ops.job_runs").where(f"run_id = '{report.run_id}'").first()
    assert runs is not None
    assert runs["status"] == "succeeded"

    strict = settings.model_copy(
        update={"quality": settings.quality.model_copy(update={"fail_on": "error"})}
    )
    with pytest.raises(LakehouseError) as exc:
        quality_job.run(spark, strict, layer="bronze", rules=rules, dqd=False)
    assert exc.value.code is ErrorCode.DQ_CHECKS_FAILED
    again = exc.value.report.run_id  # type: ignore[attr-defined]
    assert spark.table(RESULTS.name).where(f"run_id = '{again}'").count() == 3
