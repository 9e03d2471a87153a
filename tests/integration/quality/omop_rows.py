"""A small, clean OMOP CDM dataset in a test's own gold tables (``gold.q<unique>_<table>``)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.quality.report import Outputs
from lakehouse.tables.dq.results import FAILURES, RESULTS
from lakehouse.tables.gold.omop import SPECS
from lakehouse.tables.writer import ensure_table

TABLES = ("person", "observation_period", "visit_occurrence", "condition_occurrence",
          "measurement", "death", "concept")  # fmt: skip

# concept_id, name, domain, vocabulary, class, standard
CONCEPTS = [
    (0, "No matching concept", "Metadata", "None", "Undefined", None),
    (8507, "MALE", "Gender", "Gender", "Gender", "S"),
    (8532, "FEMALE", "Gender", "Gender", "Gender", "S"),
    (8515, "Asian", "Race", "Race", "Race", "S"),
    (38003564, "Not Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity", "S"),
    (9201, "Inpatient Visit", "Visit", "Visit", "Visit", "S"),
    (9202, "Outpatient Visit", "Visit", "Visit", "Visit", "S"),
    (32817, "EHR", "Type Concept", "Type Concept", "Type Concept", "S"),
    (201826, "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S"),
    (45576876, "Type 2 diabetes mellitus", "Condition", "ICD10", "ICD10 code", None),
    (3004249, "Systolic blood pressure", "Measurement", "LOINC", "Clinical Observation", "S"),
    (3004410, "Hemoglobin A1c", "Measurement", "LOINC", "Lab Test", "S"),
    (8876, "millimeter mercury column", "Unit", "UCUM", "Unit", "S"),
    (8554, "percent", "Unit", "UCUM", "Unit", "S"),
]
NON_STANDARD_CONDITION = 45576876


def _row(table: str, values: dict[str, Any]) -> tuple[Any, ...]:
    spec = SPECS[table]
    unknown = set(values) - set(spec.column_names)
    assert not unknown, unknown
    return tuple(values.get(c) for c in spec.column_names)


def clean_rows(persons: int = 3) -> dict[str, list[dict[str, Any]]]:
    """Persons with one inpatient visit, a diagnosis and two measurements each."""
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for cid, name, dom, voc, cls, std in CONCEPTS:
        rows["concept"].append({
            "concept_id": cid, "concept_name": name, "domain_id": dom, "vocabulary_id": voc,
            "concept_class_id": cls, "standard_concept": std, "concept_code": str(cid),
            "valid_start_date": date(1970, 1, 1), "valid_end_date": date(2099, 12, 31),
        })  # fmt: skip
    for i in range(1, persons + 1):
        born = date(1950 + i, 3, 1)
        start = datetime(2024, 1, 10 + i, 8, 0)
        end = datetime(2024, 1, 15 + i, 10, 0)
        common = {"person_id": i, "etl_institution_code": "H0001", "etl_source_key": f"k{i}"}
        rows["person"].append({
            "person_id": i, "gender_concept_id": 8507 if i % 2 else 8532,
            "year_of_birth": born.year,
            "month_of_birth": born.month, "day_of_birth": born.day,
            "birth_datetime": datetime(born.year, born.month, born.day),
            "race_concept_id": 8515, "ethnicity_concept_id": 38003564,
            "person_source_value": f"P{i}", "gender_source_value": "1" if i % 2 else "2",
            "race_source_value": "Asian", "ethnicity_source_value": "Han",
            "etl_source_key": f"person{i}",
        })  # fmt: skip
        rows["observation_period"].append({
            **common, "observation_period_id": i, "observation_period_start_date": start.date(),
            "observation_period_end_date": end.date(), "period_type_concept_id": 32817,
        })  # fmt: skip
        rows["visit_occurrence"].append({
            **common, "visit_occurrence_id": 100 + i, "visit_concept_id": 9201,
            "visit_start_date": start.date(), "visit_start_datetime": start,
            "visit_end_date": end.date(), "visit_end_datetime": end,
            "visit_type_concept_id": 32817, "visit_source_value": f"V{i}",
            "visit_source_concept_id": 9201,
        })  # fmt: skip
        rows["condition_occurrence"].append({
            **common, "condition_occurrence_id": 200 + i, "condition_concept_id": 201826,
            "condition_start_date": start.date(), "condition_start_datetime": start,
            "condition_end_date": end.date(), "condition_type_concept_id": 32817,
            "visit_occurrence_id": 100 + i, "condition_source_value": "E11.900",
            "condition_source_concept_id": NON_STANDARD_CONDITION,
        })  # fmt: skip
        for j, (concept, unit, value, source) in enumerate(
            [(3004249, 8876, 120.0, "SBP"), (3004410, 8554, 6.1, "HBA1C")]
        ):
            rows["measurement"].append({
                **common, "measurement_id": 1000 + 10 * i + j, "measurement_concept_id": concept,
                "measurement_date": start.date(), "measurement_datetime": start,
                "measurement_type_concept_id": 32817, "value_as_number": value,
                "unit_concept_id": unit, "range_low": 0.0, "range_high": 200.0,
                "visit_occurrence_id": 100 + i, "measurement_source_value": source,
                "measurement_source_concept_id": concept, "unit_source_value": "u",
                "unit_source_concept_id": unit, "value_source_value": str(value),
            })  # fmt: skip
    return rows


def write_gold(
    spark: SparkSession, unique: str, rows: dict[str, list[dict[str, Any]]]
) -> dict[str, str]:
    """Create ``gold.q<unique>_<table>`` for every table of ``rows``; the name mapping."""
    names = {}
    for table, values in rows.items():
        spec = dataclasses.replace(SPECS[table], name=f"gold.q{unique}_{table}")
        ensure_table(spark, spec)
        if values:
            append_rows(spark, spec.name, table, values)
        names[f"gold.{table}"] = spec.name
    return names


def append_rows(
    spark: SparkSession, physical: str, table: str, values: list[dict[str, Any]]
) -> None:
    df = spark.createDataFrame([_row(table, v) for v in values], SPECS[table].schema)
    df.write.format("delta").mode("append").saveAsTable(physical)


def outputs(unique: str) -> Outputs:
    return Outputs(
        results=dataclasses.replace(RESULTS, name=f"dq.q{unique}_results"),
        failures=dataclasses.replace(FAILURES, name=f"dq.q{unique}_failures"),
    )
