"""``silver.org``, ``silver.dept`` and ``silver.provider``: who and where care happens."""

from __future__ import annotations

from pyspark.sql.types import StringType

from lakehouse.tables.silver.common import (
    SILVER_CLUSTERING,
    SILVER_VOLATILE,
    lineage_columns,
    record_keys,
    source_columns,
)
from lakehouse.tables.spec import Phi, TableSpec, column

ORG = TableSpec(
    name="silver.org",
    comment="One row per organization a source names (the institutions of the alliance, "
    "custodians and service providers).",
    columns=(
        *source_columns(),
        column(
            "org_code",
            StringType(),
            "Organization code (institution code, OID ext).",
            nullable=False,
        ),
        column("org_name", StringType(), "Organization name."),
        column("org_oid", StringType(), "Organization OID, if known."),
        column("org_kind", StringType(), "hospital, community health center, clinic..."),
        *lineage_columns(of_person=False),
    ),
    keys=record_keys("org_code"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
)

DEPT = TableSpec(
    name="silver.dept",
    comment="One row per department (科室) of an institution, with its ward.",
    columns=(
        *source_columns(),
        column("dept_code", StringType(), "Department code.", nullable=False),
        column("dept_name", StringType(), "Department name (科室名称).", ws445="DE08.10.026.00"),
        column("dept_name_en", StringType(), "Department name in English."),
        column("ward_name", StringType(), "Ward (病区) of the department."),
        *lineage_columns(of_person=False),
    ),
    keys=record_keys("dept_code"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
)

PROVIDER = TableSpec(
    name="silver.provider",
    comment="One row per clinician (staff) of an institution.",
    columns=(
        *source_columns(),
        column("provider_id", StringType(), "Staff id (工号).", nullable=False),
        column("provider_name", StringType(), "Name.", phi=Phi.NAME),
        column("dept_code", StringType(), "Department the clinician belongs to."),
        column("title", StringType(), "Professional title (主任医师...)."),
        *lineage_columns(of_person=False),
    ),
    keys=record_keys("provider_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
)
