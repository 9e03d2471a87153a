"""``silver.encounter`` and ``silver.encounter_transfer``: visits and their transfers."""

from __future__ import annotations

from pyspark.sql.types import StringType, TimestampType

from lakehouse.tables.silver.common import (
    SILVER_CLUSTERING,
    SILVER_VOLATILE,
    encounter_column,
    lineage_columns,
    patient_columns,
    record_keys,
    source_columns,
    timestamp_with_source,
)
from lakehouse.tables.spec import Phi, TableSpec, column

ENCOUNTER = TableSpec(
    name="silver.encounter",
    comment="One row per encounter record of each source (HIS visits, HL7 ADT/PV1, CDA "
    "componentOf, FHIR Encounter, member CSV visits): outpatient, emergency or inpatient, "
    "with department, attending provider and times. HL7 A08 updates and HIS corrections "
    "replace the older version; A11/A13-style cancellations set is_deleted.",
    columns=(
        *source_columns(),
        *patient_columns(),
        encounter_column(required=True),
        column(
            "encounter_class",
            StringType(),
            "outpatient, emergency or inpatient (HIS visit_type O/E/I, HL7 PV1-2, FHIR class).",
        ),
        column("encounter_class_source", StringType(), "Class as the source wrote it."),
        column("status", StringType(), "planned, in-progress, finished or cancelled."),
        column("dept_code", StringType(), "Department code of the encounter."),
        column("dept_name", StringType(), "Department name (科室名称).", ws445="DE08.10.026.00"),
        column("attending_provider_id", StringType(), "Staff id of the responsible doctor."),
        column(
            "attending_provider_name", StringType(), "Name of the responsible doctor.", phi=Phi.NAME
        ),
        *timestamp_with_source("start_at", "Start of the encounter (visit or admission time)"),
        column(
            "end_at",
            TimestampType(),
            "End of the encounter (discharge or leave time).",
            phi=Phi.DATE,
        ),
        column(
            "admit_at",
            TimestampType(),
            "Admission time (inpatients).",
            phi=Phi.DATE,
            ws445="DE06.00.092.00",
        ),
        column(
            "discharge_at",
            TimestampType(),
            "Discharge time (inpatients).",
            phi=Phi.DATE,
            ws445="DE06.00.017.00",
        ),
        column("bed_no", StringType(), "Bed number at the end of the encounter."),
        *lineage_columns(),
    ),
    keys=record_keys("encounter_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

ENCOUNTER_TRANSFER = TableSpec(
    name="silver.encounter_transfer",
    comment="One row per transfer of an inpatient between departments or beds (HIS "
    "transfers, HL7 A02).",
    columns=(
        *source_columns(),
        column(
            "transfer_id",
            StringType(),
            "Id of the transfer in its source.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        *timestamp_with_source("transfer_at", "Time of the transfer"),
        column("from_dept_code", StringType(), "Department the patient left."),
        column("to_dept_code", StringType(), "Department the patient moved to."),
        column("bed_no", StringType(), "Bed after the transfer."),
        *lineage_columns(),
    ),
    keys=record_keys("transfer_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)
