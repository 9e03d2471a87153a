"""A few hand-built OMOP persons in suffixed gold tables (tests/integration/features).

Person 1 (male, born 1960-05-01): outpatient 2024-01-05, inpatient 2024-02-01..02-05
(readmitted 2024-02-20..02-22), emergency 2024-06-01, outpatient 2024-07-01 09:00 (last
visit: the patient index time). Person 2 (female, born 1980): one inpatient stay
2024-06-20..06-25 (label censored: the data end 2024-07-01). Person 3: no visits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pyspark.sql import SparkSession

from lakehouse.features.tables import FeatureTables
from lakehouse.tables.gold import omop
from lakehouse.tables.spec import TableSpec

#: The hospital's time zone (settings.timezone, Spark's session zone): datetimes are aware,
#: so they mean the same instant whatever the test process's own zone is.
ZONE = ZoneInfo("Asia/Shanghai")


def T(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZONE)  # type: ignore[arg-type,misc]


INDEX_P1 = T(2024, 7, 1, 9, 0)

PERSONS = [
    {"person_id": 1, "gender_concept_id": 8507, "year_of_birth": 1960, "month_of_birth": 5,
     "day_of_birth": 1, "race_concept_id": 0, "ethnicity_concept_id": 0},
    {"person_id": 2, "gender_concept_id": 8532, "year_of_birth": 1980, "race_concept_id": 0,
     "ethnicity_concept_id": 0},
    {"person_id": 3, "gender_concept_id": 8507, "year_of_birth": 2000, "race_concept_id": 0,
     "ethnicity_concept_id": 0},
]  # fmt: skip


def _visit(vid: int, pid: int, concept: int, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "visit_occurrence_id": vid, "person_id": pid, "visit_concept_id": concept,
        "visit_start_date": start.date(), "visit_start_datetime": start,
        "visit_end_date": end.date(), "visit_end_datetime": end, "visit_type_concept_id": 32817,
    }  # fmt: skip


VISITS = [
    _visit(11, 1, 9202, T(2024, 1, 5, 9), T(2024, 1, 5, 10)),
    _visit(12, 1, 9201, T(2024, 2, 1, 8), T(2024, 2, 5, 12)),
    _visit(13, 1, 9201, T(2024, 2, 20, 10), T(2024, 2, 22, 10)),
    _visit(14, 1, 9203, T(2024, 6, 1, 10), T(2024, 6, 1, 14)),
    _visit(15, 1, 9202, INDEX_P1, T(2024, 7, 1, 10)),
    _visit(21, 2, 9201, T(2024, 6, 20, 8), T(2024, 6, 25, 8)),
]

T2DM, T2DM_ICD10, HBA1C = 201826, 45576876, 3004410
CONDITIONS = [
    # date only: counts at 23:59:59 of its day
    {"condition_occurrence_id": 101, "person_id": 1, "condition_concept_id": T2DM,
     "condition_start_date": date(2024, 2, 2), "condition_type_concept_id": 32817,
     "visit_occurrence_id": 12},
    {"condition_occurrence_id": 102, "person_id": 1, "condition_concept_id": T2DM,
     "condition_start_date": date(2024, 6, 1), "condition_type_concept_id": 32817,
     "visit_occurrence_id": 14},
    {"condition_occurrence_id": 201, "person_id": 2, "condition_concept_id": 0,
     "condition_source_concept_id": T2DM_ICD10, "condition_start_date": date(2024, 6, 20),
     "condition_type_concept_id": 32817, "visit_occurrence_id": 21},
]  # fmt: skip


def measurement(
    mid: int, pid: int, at: datetime, value: float, visit: int | None
) -> dict[str, Any]:
    return {
        "measurement_id": mid, "person_id": pid, "measurement_concept_id": HBA1C,
        "measurement_date": at.date(), "measurement_datetime": at,
        "measurement_type_concept_id": 32817, "value_as_number": value,
        "visit_occurrence_id": visit,
    }  # fmt: skip


MEASUREMENTS = [
    measurement(301, 1, T(2024, 2, 2, 10), 7.5, 12),
    measurement(302, 1, T(2024, 6, 1, 11), 8.0, 14),
    measurement(303, 1, INDEX_P1, 6.0, 15),  # at the index time: excluded
    measurement(304, 1, T(2024, 6, 1, 9), 9.0, None),  # exactly index - 30 days: in 30d
    measurement(305, 1, T(2024, 6, 1, 8, 59, 59), 1.0, None),  # one second earlier: not
]
DRUGS = [
    {"drug_exposure_id": 401, "person_id": 1, "drug_concept_id": 1503297,
     "drug_exposure_start_date": date(2024, 2, 3), "drug_exposure_start_datetime": T(2024, 2, 3, 8),
     "drug_exposure_end_date": date(2024, 3, 3), "drug_type_concept_id": 32817, "quantity": 30.0,
     "visit_occurrence_id": 12},
]  # fmt: skip
PROCEDURES = [
    {"procedure_occurrence_id": 501, "person_id": 1, "procedure_concept_id": 4230911,
     "procedure_date": date(2024, 2, 2), "procedure_type_concept_id": 32817,
     "visit_occurrence_id": 12},
]  # fmt: skip
CONCEPTS = [
    {"concept_id": T2DM, "concept_name": "Type 2 diabetes mellitus", "domain_id": "Condition",
     "vocabulary_id": "SNOMED", "concept_class_id": "Clinical Finding", "standard_concept": "S",
     "concept_code": "44054006", "valid_start_date": date(1970, 1, 1),
     "valid_end_date": date(2099, 12, 31)},
    {"concept_id": T2DM_ICD10, "concept_name": "Type 2 diabetes mellitus without complications",
     "domain_id": "Condition", "vocabulary_id": "ICD10", "concept_class_id": "ICD10 code",
     "concept_code": "E11.9", "valid_start_date": date(1970, 1, 1),
     "valid_end_date": date(2099, 12, 31)},
    {"concept_id": HBA1C, "concept_name": "Hemoglobin A1c/Hemoglobin.total in Blood",
     "domain_id": "Measurement", "vocabulary_id": "LOINC", "concept_class_id": "Lab Test",
     "standard_concept": "S", "concept_code": "4548-4", "valid_start_date": date(1970, 1, 1),
     "valid_end_date": date(2099, 12, 31)},
]  # fmt: skip

ROWS: dict[str, list[dict[str, Any]]] = {
    "person": PERSONS,
    "visit_occurrence": VISITS,
    "condition_occurrence": CONDITIONS,
    "drug_exposure": DRUGS,
    "procedure_occurrence": PROCEDURES,
    "measurement": MEASUREMENTS,
    "observation": [],
    "death": [],
    "concept": CONCEPTS,
}


def gold_spec(tables: FeatureTables, logical: str) -> TableSpec:
    import dataclasses

    return dataclasses.replace(omop.SPECS[logical], name=tables.gold[logical])


def add_rows(
    spark: SparkSession, tables: FeatureTables, logical: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Append ``rows`` (missing columns null) to the suffixed gold table ``logical``.

    A plain Delta append with the spec's schema (one commit; creates the table the first
    time): the gold build's own writer is not under test here.
    """
    spec = gold_spec(tables, logical)
    full = [{c: r.get(c) for c in spec.column_names} for r in rows]
    spark.createDataFrame(full, spec.schema).write.format("delta").mode("append").saveAsTable(
        spec.name
    )


def write_gold(spark: SparkSession, tables: FeatureTables) -> None:
    """Every table of :data:`ROWS`, a few at a time: each write is mostly driver round trips
    (catalog, Delta log), so threads on the one session overlap them (as ensure_tables)."""
    from concurrent.futures import ThreadPoolExecutor

    spark.sql("CREATE SCHEMA IF NOT EXISTS gold")
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="gold") as pool:
        list(pool.map(lambda item: add_rows(spark, tables, *item), ROWS.items()))
