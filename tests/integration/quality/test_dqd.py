"""OMOP DataQualityDashboard checks over small gold tables: a clean dataset passes every
applicable check; deliberately broken rows fail the matching check type."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from lakehouse.quality.dqd import run_dqd
from lakehouse.quality.report import QualityReport
from lakehouse.settings import Settings
from tests.integration.quality.omop_rows import (
    NON_STANDARD_CONDITION,
    TABLES,
    clean_rows,
    outputs,
    write_gold,
)

DIED = date(2023, 6, 1)


def _broken_rows() -> dict[str, list[dict[str, Any]]]:
    """Person 9 (born 1990, died 2023-06-01) with a measurement in 1980 (before birth), one
    in 2024 (after death), a visit ending before it starts and a non-standard concept in
    condition_concept_id: appended to the clean tables."""
    one = clean_rows(persons=9)
    bad = {t: [r for r in rows if r.get("person_id") == 9] for t, rows in one.items()}
    bad["concept"] = []
    bad["person"][0].update(year_of_birth=1990, birth_datetime=datetime(1990, 3, 1))
    m = bad["measurement"][0]
    m["measurement_date"], m["measurement_datetime"] = date(1980, 1, 1), datetime(1980, 1, 1)
    visit = bad["visit_occurrence"][0]
    visit["visit_end_date"], visit["visit_end_datetime"] = date(2023, 1, 1), datetime(2023, 1, 1)
    bad["observation_period"][0]["observation_period_start_date"] = date(1980, 1, 1)
    bad["condition_occurrence"][0]["condition_concept_id"] = NON_STANDARD_CONDITION
    bad["death"] = [{"person_id": 9, "death_date": DIED, "death_datetime": datetime(2023, 6, 1),
                     "death_type_concept_id": 32817, "etl_source_key": "death9"}]  # fmt: skip
    return bad


@pytest.fixture(scope="module")
def gold(spark: Any) -> dict[str, str]:
    """Clean persons 1-3 plus the broken person 9, written once for the module."""
    rows = clean_rows()
    for table, more in _broken_rows().items():
        rows[table] = rows[table] + more
    return write_gold(spark, uuid.uuid4().hex[:8], rows)


#: Keys of person 9's rows: the only rows any check may fail on.
BROKEN_KEYS = {
    '{"person_id":"9"}', '{"observation_period_id":"9"}', '{"visit_occurrence_id":"109"}',
    '{"condition_occurrence_id":"209"}', '{"measurement_id":"1090"}',
    '{"measurement_id":"1091"}',
}  # fmt: skip


def _cfg(settings: Settings, folder: Path | None) -> Settings:
    return settings.model_copy(
        update={"quality": settings.quality.model_copy(update={"dqd_thresholds_dir": folder})}
    )


def _failing(report: QualityReport) -> dict[str, int | None]:
    return {r.rule.id: r.rows_failing for r in report.results if r.status == "fail"}


def _run(spark: Any, cfg: Settings, unique: str, names: dict[str, str]) -> QualityReport:
    return run_dqd(spark, cfg, tables=TABLES, table_names=names, outputs=outputs(unique))


def _only_broken_rows_fail(report: QualityReport) -> None:
    assert not report.errors, [(r.rule.id, r.message) for r in report.errors]
    for r in report.failed:
        assert r.samples, r.rule.id
        assert set(r.samples) <= BROKEN_KEYS, (r.rule.id, r.samples)


def test_cdm_spec_checks_pass_clean_rows_and_catch_the_broken_ones(
    spark: Any, settings: Settings, unique: str, gold: dict[str, str]
) -> None:
    report = _run(spark, _cfg(settings, None), unique, gold)
    _only_broken_rows_fail(report)
    assert _failing(report) == {
        "DQD-condition_occurrence-condition_concept_id-isStandardValidConcept": 1,
        "DQD-visit_occurrence-visit_start_date-plausibleStartBeforeEnd": 1,
        "DQD-visit_occurrence-visit_start_datetime-plausibleStartBeforeEnd": 1,
        "DQD-measurement-measurement_date-plausibleAfterBirth": 1,
        "DQD-measurement-measurement_datetime-plausibleAfterBirth": 1,
        "DQD-observation_period-observation_period_start_date-plausibleAfterBirth": 1,
    }
    assert {r.rule.threshold_source for r in report.results} == {"cdm-spec"}
    checks = {r.rule.check_name for r in report.results if r.status == "pass"}
    assert {"isRequired", "isPrimaryKey", "isForeignKey", "fkDomain", "cdmDatatype",
            "isStandardValidConcept", "cdmTable", "cdmField", "plausibleStartBeforeEnd",
            "plausibleAfterBirth"} <= checks  # fmt: skip
    stored = spark.table(f"dq.q{unique}_results")
    assert stored.count() == len(report.results)
    assert stored.where("status = 'fail'").count() == 6
    keys = spark.table(f"dq.q{unique}_failures").where(
        "rule_id = 'DQD-measurement-measurement_date-plausibleAfterBirth'"
    )
    assert [r["row_key"] for r in keys.collect()] == ['{"measurement_id":"1090"}']


@pytest.mark.refdata
def test_published_thresholds_pass_clean_rows_and_catch_the_broken_ones(
    spark: Any, settings: Settings, unique: str, refdata: Path, gold: dict[str, str]
) -> None:
    report = _run(spark, _cfg(settings, refdata / "omop-dqd-checks"), unique, gold)
    _only_broken_rows_fail(report)
    failing = _failing(report)
    assert failing["DQD-measurement-measurement_date-plausibleAfterBirth"] == 1
    assert failing["DQD-measurement-measurement_date-plausibleTemporalAfter"] == 1
    assert failing["DQD-visit_occurrence-visit_start_date-plausibleStartBeforeEnd"] == 1
    assert failing["DQD-visit_occurrence-visit_end_date-plausibleTemporalAfter"] == 1
    assert failing["DQD-condition_occurrence-condition_concept_id-isStandardValidConcept"] == 1
    # the 2024 visit, diagnosis and measurement of a person who died in June 2023 (DQD
    # checks measurements after death as plausibleBeforeDeath, visits as plausibleDuringLife)
    assert failing["DQD-measurement-measurement_date-plausibleBeforeDeath"] == 1
    assert failing["DQD-visit_occurrence-visit_start_date-plausibleDuringLife"] == 1
    assert failing["DQD-condition_occurrence-condition_start_date-plausibleDuringLife"] == 1
    assert {r.rule.threshold_source for r in report.results} == {"dqd-csv"}
    applied = {r.rule.check_name for r in report.results if r.status in ("pass", "fail")}
    assert {"plausibleAfterBirth", "plausibleStartBeforeEnd", "plausibleDuringLife",
            "measureValueCompleteness", "measurePersonCompleteness", "fkDomain",
            "standardConceptRecordCompleteness", "plausibleValueLow",
            "plausibleTemporalAfter", "isRequired", "isForeignKey"} <= applied  # fmt: skip
