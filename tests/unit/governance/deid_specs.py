"""Test specs with every PHI tag for the de-identification tests (silver does not exist yet)."""

from __future__ import annotations

import dataclasses

from pyspark.sql.types import DateType, IntegerType, StringType, TimestampType

from lakehouse.tables.spec import Phi, TableSpec, column

PATIENT = TableSpec(
    name="silver.deid_patient",
    comment="Test patients with every PHI tag.",
    columns=(
        column("patient_id", StringType(), "Patient id.", nullable=False, phi=Phi.IDENTIFIER),
        column("name", StringType(), "Name.", phi=Phi.NAME),
        column("id_card", StringType(), "身份证号.", phi=Phi.IDENTIFIER),
        column("phone", StringType(), "Phone.", phi=Phi.CONTACT),
        column("address", StringType(), "Street address.", phi=Phi.ADDRESS),
        column("postcode", StringType(), "Postcode.", phi=Phi.QUASI),
        column("birth_date", DateType(), "Birth date.", phi=Phi.DATE),
        column("age", IntegerType(), "Age in years.", phi=Phi.QUASI),
        column("sex", StringType(), "Sex.", phi=Phi.QUASI),
        column("occupation", StringType(), "Occupation.", phi=Phi.QUASI),
        column("note", StringType(), "Registration remark.", phi=Phi.FREE_TEXT),
        column("raw_payload", StringType(), "Source message.", phi=Phi.RAW),
        column("institution_code", StringType(), "Institution."),
    ),
    keys=("patient_id",),
    person_key="patient_id",
)
ENCOUNTER = TableSpec(
    name="silver.deid_encounter",
    comment="Test encounters.",
    columns=(
        column("encounter_id", StringType(), "Visit number.", nullable=False, phi=Phi.IDENTIFIER),
        column("patient_id", StringType(), "Patient id.", phi=Phi.IDENTIFIER),
        column("admit_date", DateType(), "Admission date.", phi=Phi.DATE),
        column("admit_time", TimestampType(), "Admission time.", phi=Phi.DATE),
        column("discharge_date", DateType(), "Discharge date.", phi=Phi.DATE),
        column("summary", StringType(), "Discharge summary.", phi=Phi.FREE_TEXT),
        column("summary_deid", StringType(), "Discharge summary, de-identified."),
        column("department_code", StringType(), "Department."),
        column("institution_code", StringType(), "Institution."),
    ),
    keys=("encounter_id",),
    person_key="patient_id",
)
COUNTS = TableSpec(
    name="gold.deid_counts",
    comment="Test aggregate without a person.",
    columns=(
        column("department_code", StringType(), "Department."),
        column("visit_date", DateType(), "Day.", phi=Phi.DATE),
        column("visit_no", StringType(), "A visit number.", phi=Phi.IDENTIFIER),
        column("n", IntegerType(), "Visits."),
    ),
)


def renamed(spec: TableSpec, suffix: str) -> TableSpec:
    """The spec under a unique table name, so tests never share a table."""
    return dataclasses.replace(spec, name=f"{spec.name}_{suffix}")
