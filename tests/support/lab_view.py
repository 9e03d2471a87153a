"""A small lab-results table in silver and a de-identified view of it in deid, with a
policy where analysts read ``deid.*`` of their institution: what the SQL endpoint's and the
Spark Connect gateway's tests serve."""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import SparkSession
from pyspark.sql.types import DateType, DoubleType, StringType

from lakehouse.tables.spec import Phi, TableSpec, column
from lakehouse.tables.writer import ensure_table

POLICY = """
version: 1
roles:
  clinician:
    read: [silver.*]
    phi: [identifier, date]
    scope: [institution]
  analyst:
    read: [deid.*]
    deny: [audit.*, bronze.*, governance.*]
    scope: [institution]
  admin:
    read: [ops.*]
    deny: [audit.*]
  auditor:
    read: [audit.*]
"""


def seed_lab_view(
    spark: SparkSession, name: str, *, h1_rows: int, h2_rows: int
) -> tuple[TableSpec, TableSpec]:
    """``silver.<name>`` with ``h1_rows`` rows of institution H1 then ``h2_rows`` of H2
    (lab ids L00, L01, ...; values 5.0, 5.1, ...; collected from 2024-01-01 on), and the view
    ``deid.<name>``: a keyed person token and the year of collection instead of the patient
    id and the date."""
    labs = TableSpec(
        name=f"silver.{name}",
        comment="Lab results (a service test's).",
        columns=(
            column("lab_id", StringType(), "Lab result id.", nullable=False),
            column("patient_id", StringType(), "Patient id.", phi=Phi.IDENTIFIER),
            column("loinc", StringType(), "LOINC code."),
            column("value", DoubleType(), "Result value."),
            column("taken_on", DateType(), "Collection date.", phi=Phi.DATE),
            column("institution_code", StringType(), "Institution."),
        ),
        keys=("lab_id",),
    )
    view = TableSpec(
        name=f"deid.{name}",
        comment="De-identified lab results: person token, year of collection.",
        columns=(
            column("person_token", StringType(), "Keyed token of the patient."),
            column("lab_id", StringType(), "Lab result id."),
            column("loinc", StringType(), "LOINC code."),
            column("value", DoubleType(), "Result value."),
            column("taken_year", StringType(), "Year of collection."),
            column("institution_code", StringType(), "Institution."),
        ),
    )
    ensure_table(spark, labs)
    day = date(2024, 1, 1)
    rows = [
        (f"L{i:02d}", f"P{i % 4}", "2345-7", 5.0 + i / 10, day + timedelta(days=i),
         "H1" if i < h1_rows else "H2")
        for i in range(h1_rows + h2_rows)
    ]  # fmt: skip
    spark.createDataFrame(rows, labs.schema).write.insertInto(labs.name)
    spark.sql("CREATE SCHEMA IF NOT EXISTS deid")
    spark.sql(
        f"CREATE OR REPLACE VIEW {view.name} AS SELECT sha2(concat('k', patient_id), 256) "
        "AS person_token, lab_id, loinc, value, CAST(year(taken_on) AS STRING) AS taken_year, "
        f"institution_code FROM {labs.name}"
    )
    return labs, view
