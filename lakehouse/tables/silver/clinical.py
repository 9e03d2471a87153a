"""Coded clinical facts: diagnoses, lab results, medication orders, procedures, vital signs.

Each carries the code as sent and its standard concept from the terminology service
(``coded_columns``); unmapped codes stay here with map_status 'unmapped' and are queued in
``vocab.review_queue``, never dropped.
"""

from __future__ import annotations

from pyspark.sql.types import BooleanType, DoubleType, IntegerType, StringType, TimestampType

from lakehouse.tables.silver.common import (
    SILVER_CLUSTERING,
    SILVER_VOLATILE,
    coded_columns,
    encounter_column,
    lineage_columns,
    patient_columns,
    record_keys,
    source_columns,
    timestamp_with_source,
)
from lakehouse.tables.spec import Phi, TableSpec, column

DIAGNOSIS = TableSpec(
    name="silver.diagnosis",
    comment="One row per diagnosis record (HIS diagnoses, CDA diagnosis entries, FHIR "
    "Condition, member CSV): ICD-10 (national clinical edition) or local code mapped to the "
    "standard concept.",
    columns=(
        *source_columns(),
        column(
            "diagnosis_id",
            StringType(),
            "Id of the diagnosis in its source.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        *coded_columns("", "Diagnosis"),
        column(
            "diagnosis_type",
            StringType(),
            "primary (主要诊断) or secondary (其他诊断); admission/discharge where stated.",
        ),
        column("is_primary", BooleanType(), "Whether this is the encounter's primary diagnosis."),
        column("clinical_status", StringType(), "active, resolved... (FHIR clinicalStatus)."),
        *timestamp_with_source("diagnosed_at", "When the diagnosis was made or recorded"),
        *lineage_columns(),
    ),
    keys=record_keys("diagnosis_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

LAB_RESULT = TableSpec(
    name="silver.lab_result",
    comment="One row per lab result (HL7 ORU OBX, FHIR Observation laboratory, member CSV): "
    "the test mapped to LOINC, the value as reported and converted to the analyte's "
    "canonical UCUM unit, reference range and flag. A corrected result (OBX-11 C) replaces "
    "the final one it corrects.",
    columns=(
        *source_columns(),
        column(
            "result_id",
            StringType(),
            "Stable id of the result in its source: HL7 filler order number + '|' + OBX-3 "
            "code (+ sub-id), FHIR Observation id, CSV 检验流水号.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        column(
            "order_id",
            StringType(),
            "Order (OBR filler order number) the result belongs to.",
            phi=Phi.IDENTIFIER,
        ),
        column("panel_code", StringType(), "Panel / order item code (OBR-4), as sent."),
        column("panel_name", StringType(), "Panel / order item name, as sent."),
        *coded_columns("test", "Test"),
        column(
            "test_local_code",
            StringType(),
            "The site's own test code when the source also sent a standard one (OBX-3.1 "
            "next to a LOINC OBX-3.4; a FHIR coding of the site's system).",
        ),
        column("test_local_name", StringType(), "The site's own test name, as sent."),
        column("value_type", StringType(), "HL7 value type (NM, ST, CE...) or FHIR value[x]."),
        column("value_source", StringType(), "The result value as sent (text)."),
        column("value_as_number", DoubleType(), "Numeric value in the reported unit."),
        column("unit_source", StringType(), "Unit as sent."),
        column("value_std", DoubleType(), "Numeric value in the analyte's canonical unit."),
        column("unit_std", StringType(), "Canonical UCUM unit of the analyte."),
        column("unit_status", StringType(), "canonical, converted, unknown_unit or no_value."),
        column("reference_range_source", StringType(), "Reference range as sent (3.9-6.1)."),
        column("reference_low", DoubleType(), "Lower reference limit in the reported unit."),
        column("reference_high", DoubleType(), "Upper reference limit in the reported unit."),
        column("abnormal_flag", StringType(), "Abnormal flag: H, L, N, A... (OBX-8)."),
        column("result_status", StringType(), "F final, C corrected, P preliminary (OBX-11)."),
        *timestamp_with_source("collected_at", "Specimen collection / observation time"),
        column("reported_at", TimestampType(), "When the result was reported.", phi=Phi.DATE),
        column(
            "comment", StringType(), "Result comments (NTE), escapes decoded.", phi=Phi.FREE_TEXT
        ),
        *lineage_columns(),
    ),
    keys=record_keys("result_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

MEDICATION_ORDER = TableSpec(
    name="silver.medication_order",
    comment="One row per medication order or prescription line (HIS prescriptions, FHIR "
    "MedicationRequest, member CSV): drug mapped to ATC, dose, route, frequency, duration.",
    columns=(
        *source_columns(),
        column(
            "medication_order_id",
            StringType(),
            "Id of the order in its source.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        *coded_columns("drug", "Drug"),
        column("dose", DoubleType(), "Single dose (单次剂量)."),
        column("dose_unit", StringType(), "Unit of the single dose (UCUM where known)."),
        column("route", StringType(), "Route of administration as sent (口服, 静脉滴注...)."),
        column("frequency", StringType(), "Frequency code as sent (qd, bid, q8h...)."),
        column("days_supply", IntegerType(), "Days the order covers."),
        column("status", StringType(), "active, completed, cancelled..."),
        column("prescriber_id", StringType(), "Staff id of the prescriber."),
        *timestamp_with_source("ordered_at", "When the order was written"),
        *lineage_columns(),
    ),
    keys=record_keys("medication_order_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

PROCEDURE = TableSpec(
    name="silver.procedure",
    comment="One row per procedure or examination order (HIS imaging/procedure orders, FHIR "
    "Procedure, CDA procedure entries): code mapped to ICD-9-CM-3 or the standard vocabulary.",
    columns=(
        *source_columns(),
        column(
            "procedure_id",
            StringType(),
            "Id of the procedure in its source.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        *coded_columns("", "Procedure"),
        column("status", StringType(), "ordered, completed, cancelled..."),
        column("provider_id", StringType(), "Staff id of the ordering or performing provider."),
        *timestamp_with_source("performed_at", "When the procedure was ordered or performed"),
        *lineage_columns(),
    ),
    keys=record_keys("procedure_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

VITAL_SIGN = TableSpec(
    name="silver.vital_sign",
    comment="One row per vital sign measurement (FHIR vital-signs Observations, CDA physical "
    "examination entries, HL7 OBX of vital signs): LOINC-coded, UCUM units.",
    columns=(
        *source_columns(),
        column(
            "vital_id",
            StringType(),
            "Id of the measurement in its source.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        *coded_columns("", "Vital sign"),
        column("value_as_number", DoubleType(), "Measured value."),
        column("unit_source", StringType(), "Unit as sent."),
        column("unit_std", StringType(), "UCUM unit."),
        *timestamp_with_source("measured_at", "When it was measured"),
        *lineage_columns(),
    ),
    keys=record_keys("vital_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)
