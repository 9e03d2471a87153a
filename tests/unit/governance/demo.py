"""Small demo table specs and a policy for the governance tests (silver does not exist yet)."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql.types import DateType, DoubleType, StringType

from lakehouse.governance.policy import Policy, load_policy
from lakehouse.tables.spec import Phi, TableSpec, column

PATIENTS = TableSpec(
    name="silver.demo_patients",
    comment="Demo patient directory.",
    columns=(
        column("patient_id", StringType(), "Patient id.", nullable=False, phi=Phi.IDENTIFIER),
        column("name", StringType(), "Name.", phi=Phi.NAME),
        column("id_card", StringType(), "身份证号.", phi=Phi.IDENTIFIER),
        column("phone", StringType(), "Phone.", phi=Phi.CONTACT),
        column("address", StringType(), "Address.", phi=Phi.ADDRESS),
        column("birth_date", DateType(), "Birth date.", phi=Phi.DATE),
        column("sex", StringType(), "Sex."),
        column("department_code", StringType(), "Department."),
        column("institution_code", StringType(), "Institution."),
    ),
    keys=("patient_id",),
)
LABS = TableSpec(
    name="silver.demo_labs",
    comment="Demo lab results.",
    columns=(
        column("lab_id", StringType(), "Lab id.", nullable=False),
        column("patient_id", StringType(), "Patient id.", phi=Phi.IDENTIFIER),
        column("loinc", StringType(), "Test code."),
        column("value", DoubleType(), "Result."),
        column("institution_code", StringType(), "Institution."),
    ),
    keys=("lab_id",),
)
COUNTS = TableSpec(
    name="gold.demo_counts",
    comment="Demo de-identified counts by department.",
    columns=(
        column("department_code", StringType(), "Department."),
        column("institution_code", StringType(), "Institution."),
        column("n", DoubleType(), "Patients."),
    ),
)
CATALOG = {s.name: s for s in (PATIENTS, LABS, COUNTS)}

POLICY_YAML = """
version: 1
patient_directory: silver.demo_patients
roles:
  clinician:
    read: [silver.*, gold.*]
    phi: [name, identifier, contact, address, date]
    scope: [department, institution]
    break_glass: true
  nurse:
    read: [silver.*]
    phi: [name, identifier, date]
    scope: [department, institution]
  analyst:
    read: [silver.*, gold.*]
    scope: [institution]
  data_scientist:
    read: [gold.*]
  admin:
    read: [ops.*]
    deny: [audit.*]
  auditor:
    read: [audit.*]
"""


def demo_policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_YAML)
    return load_policy(path)
