"""The patient directory: which departments care for which patients, at which site.

Row policies scope a clinician to the patients of their department (docs/security.md).
Most silver tables (labs, medications, notes...) carry no department, so the SQL guard
looks the patient up in the directory named by the policy (``patient_directory``). The
directory is a view over the encounters and transfers in silver: a patient belongs to every
department that saw them (the encounter's department, or one they were transferred to),
at the institution where that happened. Being a view, it is current with silver at every
query and holds no copy of patient data. It keeps duplicate rows (``UNION ALL``): the row
filter only asks whether a pair is in it, and removing duplicates would cost every guarded
read a shuffle.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession
from pyspark.sql.types import StringType

from lakehouse.tables.spec import Phi, TableSpec, column

logger = logging.getLogger(__name__)

ENCOUNTERS = "silver.encounter"
TRANSFERS = "silver.encounter_transfer"

#: The view's spec: what the SQL guard's catalog knows of it (not a Delta table, so it is
#: not in the table registry and the foundation stage does not create it).
PATIENT_DIRECTORY = TableSpec(
    name="governance.patient_directory",
    comment="Patients by institution and the departments that saw them (a view over "
    "silver.encounter and silver.encounter_transfer; the patient directory of the row policies).",
    columns=(
        column("institution_code", StringType(), "Institution (site) of the patient id."),
        column("patient_id", StringType(), "Patient id at that institution.", phi=Phi.IDENTIFIER),
        column("dept_code", StringType(), "A department that saw the patient there."),
    ),
    person_key="patient_id",
)


def _select(table: str, dept: str) -> str:
    # Names come from this module's constants (tests pass their own), never from users.
    return (
        f"SELECT institution_code, patient_id, {dept} AS dept_code FROM {table} "  # noqa: S608
        f"WHERE patient_id IS NOT NULL AND {dept} IS NOT NULL AND NOT is_deleted"
    )


def refresh_patient_directory(
    spark: SparkSession,
    *,
    view: str = PATIENT_DIRECTORY.name,
    encounters: str = ENCOUNTERS,
    transfers: str = TRANSFERS,
) -> bool:
    """Create or replace the view; ``False`` (and no view) before silver has encounters."""
    if not spark.catalog.tableExists(encounters):
        logger.info("patient directory not created: %s does not exist yet", encounters)
        return False
    parts = [_select(encounters, "dept_code")]
    if spark.catalog.tableExists(transfers):
        parts.append(_select(transfers, "to_dept_code"))
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {view.split('.')[0]}")
    spark.sql(
        f"CREATE OR REPLACE VIEW {view} COMMENT '{PATIENT_DIRECTORY.comment}' AS "
        + " UNION ALL ".join(parts)
    )
    return True
