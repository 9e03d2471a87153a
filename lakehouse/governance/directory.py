"""The patient directory: which departments care for which patients, at which site.

Row policies scope a clinician to the patients of their department (docs/security.md).
Most silver tables (labs, medications, notes...) carry no department, so the SQL guard
looks the patient up in the directory named by the policy (``patient_directory``): a
patient belongs to every department that saw them (the encounter's department, or one
they were transferred to), at the institution where that happened.

The directory is a small Delta table derived from silver.encounter and
silver.encounter_transfer, clustered by (institution, patient), so that a guarded read
tests membership against it instead of scanning every encounter (which a view over the
encounters did on every department-scoped read). :func:`refresh_patient_directory`
brings it up to date: the silver job calls it at the end of each run and the access
service when it starts. It records the source versions it was built from and does
nothing when they have not moved; otherwise one MERGE adds the new (institution, patient,
department) triples and deletes the ones silver no longer holds (a deleted encounter).
Until silver has encounters there is no directory, and department-scoped reads of tables
without a department are refused (fail closed).
"""

from __future__ import annotations

import dataclasses
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType

from lakehouse.tables.spec import Phi, TableSpec, column
from lakehouse.tables.versions import latest_version

logger = logging.getLogger(__name__)

ENCOUNTERS = "silver.encounter"
TRANSFERS = "silver.encounter_transfer"
#: Table property: the source versions the directory was last built from.
SOURCES_PROPERTY = "lakehouse.directory.sources"

#: Not in the table registry: derived data the directory's own refresh creates (the
#: foundation stage does not), and no role reads ``governance.*``.
PATIENT_DIRECTORY = TableSpec(
    name="governance.patient_directory",
    comment="Patients by institution and the departments that saw them, derived from "
    "silver.encounter and silver.encounter_transfer (the patient directory of the row "
    "policies; refreshed by the silver job and at service start).",
    columns=(
        column(
            "institution_code",
            StringType(),
            "Institution (site) of the patient id.",
            nullable=False,
        ),
        column(
            "patient_id",
            StringType(),
            "Patient id at that institution.",
            phi=Phi.IDENTIFIER,
            nullable=False,
        ),
        column(
            "dept_code", StringType(), "A department that saw the patient there.", nullable=False
        ),
    ),
    keys=("institution_code", "patient_id", "dept_code"),
    cluster_by=("institution_code", "patient_id"),
    person_key="patient_id",
)


def _select(table: str, version: int, dept: str) -> str:
    # Names come from this module's constants (tests pass their own), never from users.
    return (
        f"SELECT institution_code, patient_id, {dept} AS dept_code "  # noqa: S608
        f"FROM {table} VERSION AS OF {version} WHERE institution_code IS NOT NULL "
        f"AND patient_id IS NOT NULL AND {dept} IS NOT NULL AND NOT is_deleted"
    )


def refresh_patient_directory(
    spark: SparkSession,
    *,
    table: str = PATIENT_DIRECTORY.name,
    encounters: str = ENCOUNTERS,
    transfers: str = TRANSFERS,
) -> bool:
    """Bring the directory up to date with silver; ``False`` (no directory) before silver
    has encounters."""
    from lakehouse.tables.writer import upsert  # the writer imports governance (encryption)

    sources = {
        name: version
        for name in (encounters, transfers)
        if (version := latest_version(spark, name)) is not None
    }
    if encounters not in sources:
        logger.info("patient directory not built: %s does not exist yet", encounters)
        return False
    stamp = ",".join(f"{name}@{version}" for name, version in sorted(sources.items()))
    spec = dataclasses.replace(PATIENT_DIRECTORY, name=table)
    if spark.catalog.tableExists(table):
        if spark.catalog.getTable(table).tableType == "VIEW":  # the directory was a view once
            spark.sql(f"DROP VIEW {table}")
        elif _built_from(spark, table) == stamp:
            return True
    parts = [_select(encounters, sources[encounters], "dept_code")]
    if transfers in sources:
        parts.append(_select(transfers, sources[transfers], "to_dept_code"))
    triples: DataFrame = spark.sql(" UNION ALL ".join(parts)).distinct()
    report = upsert(spark, spec, triples, delete_unmatched=True)
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('{SOURCES_PROPERTY}' = '{stamp}')")
    logger.info(
        "patient directory refreshed from %s: %d added, %d removed",
        stamp,
        report.inserted,
        report.deleted,
    )
    return True


def _built_from(spark: SparkSession, table: str) -> str | None:
    rows = spark.sql(f"SHOW TBLPROPERTIES {table} ('{SOURCES_PROPERTY}')").collect()
    value = rows[0]["value"] if rows else None
    return None if value is None or "does not have property" in value else str(value)
