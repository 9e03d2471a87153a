"""HIS database rows (``bronze.his_<table>``) -> silver.

Bronze keeps every distinct version of a HIS row (``row_sha256``), with the row's
``updated_at`` as ``source_updated_at`` and ``op`` 'D' for a deletion found by key
reconciliation; the silver MERGE keeps the newest version per key, so a late correction in
the HIS replaces the wrong value after the next incremental run.

| HIS table | silver table |
|---|---|
| patients | silver.patient |
| visits | silver.encounter |
| transfers | silver.encounter_transfer |
| diagnoses | silver.diagnosis (ICD-10 national clinical edition, vocabulary ICD10) |
| prescriptions | silver.medication_order (the HIS drug catalogue code, LOCAL:<inst>:DRUG) |
| orders (IMG, PROC) | silver.procedure (the HIS item code, LOCAL:<inst>:PROC) |
| departments | silver.dept |
| staff | silver.provider |

``orders`` of type LAB and DRUG are the requests behind lab results and prescriptions,
which arrive from the LIS and the prescriptions table; ``charges`` are billing, outside the
clinical model. Both are left in bronze.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.silver.base import SilverOutput, blank_to_null, patient_key
from lakehouse.silver.conform import address_parts, phone_digits

_CLASS = {"O": "outpatient", "E": "emergency", "I": "inpatient"}


def _lineage(df: DataFrame) -> list[Column]:
    return [
        F.col("institution_code"),
        F.lit("his").alias("source_system"),
        F.col("row_sha256").alias("bronze_file_sha256"),
        F.lit(None).cast("long").alias("bronze_record_index"),
        F.col("source_updated_at").cast("timestamp").alias("source_updated_at"),
        F.coalesce(F.col("op") == "D", F.lit(False)).alias("is_deleted"),
    ]


def _ts_text(c: str) -> Column:
    return F.date_format(F.col(c).cast("timestamp"), "yyyy-MM-dd HH:mm:ss")


def patients(df: DataFrame) -> SilverOutput:
    province, city, county = address_parts(F.col("address"))
    rows = df.select(
        *_lineage(df),
        F.col("patient_id"),
        patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
        F.col("patient_id").alias("source_record_id"),
        F.create_map(F.concat(F.col("institution_code"), F.lit("^MR")), F.col("patient_id")).alias(
            "identifiers"
        ),
        blank_to_null(F.col("id_card")).alias("id_card_no"),
        blank_to_null(F.col("passport")).alias("passport_no"),
        blank_to_null(F.col("name")).alias("name"),
        F.col("sex").alias("sex_source"),
        F.col("birth_date").cast("date").alias("birth_date"),
        F.col("birth_date").cast("string").alias("birth_date_source"),
        phone_digits(F.col("phone")).alias("phone"),
        blank_to_null(F.col("address")).alias("address"),
        province.alias("address_province"),
        city.alias("address_city"),
        county.alias("address_county"),
        blank_to_null(F.col("ethnicity")).alias("ethnicity"),
    )
    out = SilverOutput()
    out.add("silver.patient", rows)
    return out


def visits(df: DataFrame) -> SilverOutput:
    klass = F.lit(None).cast("string")
    for code, name in _CLASS.items():
        klass = F.when(F.col("visit_type") == code, name).otherwise(klass)
    start = F.coalesce(F.col("admit_time"), F.col("visit_time")).cast("timestamp")
    rows = df.select(
        *_lineage(df),
        F.col("patient_id"),
        patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
        F.col("visit_no").alias("encounter_id"),
        klass.alias("encounter_class"),
        F.col("visit_type").alias("encounter_class_source"),
        F.when(F.col("discharge_time").isNotNull(), "finished")
        .when(F.col("visit_type") == "I", "in-progress")
        .otherwise("finished")
        .alias("status"),
        F.col("dept_code"),
        F.col("doctor_id").alias("attending_provider_id"),
        start.alias("start_at"),
        F.date_format(start, "yyyy-MM-dd HH:mm:ss").alias("start_at_source"),
        F.col("discharge_time").cast("timestamp").alias("end_at"),
        F.col("admit_time").cast("timestamp").alias("admit_at"),
        F.col("discharge_time").cast("timestamp").alias("discharge_at"),
        blank_to_null(F.col("bed_no")).alias("bed_no"),
    )
    out = SilverOutput()
    out.add("silver.encounter", rows)
    return out


def transfers(df: DataFrame) -> SilverOutput:
    rows = df.select(
        *_lineage(df),
        F.col("transfer_id"),
        F.col("visit_no").alias("encounter_id"),
        F.col("transfer_time").cast("timestamp").alias("transfer_at"),
        _ts_text("transfer_time").alias("transfer_at_source"),
        F.col("from_dept").alias("from_dept_code"),
        F.col("to_dept").alias("to_dept_code"),
        blank_to_null(F.col("bed_no")).alias("bed_no"),
    )
    out = SilverOutput()
    out.add("silver.encounter_transfer", rows)
    return out


def diagnoses(df: DataFrame) -> SilverOutput:
    kind = F.col("diag_type")
    rows = df.select(
        *_lineage(df),
        F.col("diag_id").alias("diagnosis_id"),
        F.col("visit_no").alias("encounter_id"),
        F.trim(F.col("icd10")).alias("source_code"),
        F.lit("ICD10").alias("source_vocabulary"),
        F.col("diag_name").alias("source_name"),
        F.when(kind == "主要", "primary")
        .when(kind == "其他", "secondary")
        .otherwise(kind)
        .alias("diagnosis_type"),
        (kind == "主要").alias("is_primary"),
        F.col("diag_time").cast("timestamp").alias("diagnosed_at"),
        _ts_text("diag_time").alias("diagnosed_at_source"),
    )
    out = SilverOutput()
    out.add("silver.diagnosis", rows)
    return out


def prescriptions(df: DataFrame) -> SilverOutput:
    rows = df.select(
        *_lineage(df),
        F.col("rx_id").alias("medication_order_id"),
        F.col("visit_no").alias("encounter_id"),
        F.col("drug_code").alias("drug_source_code"),
        F.concat(F.lit("LOCAL:"), F.col("institution_code"), F.lit(":DRUG")).alias(
            "drug_source_vocabulary"
        ),
        F.col("drug_name").alias("drug_source_name"),
        F.col("dose").cast("double").alias("dose"),
        F.col("dose_unit"),
        F.col("route"),
        F.col("frequency"),
        F.col("days").cast("int").alias("days_supply"),
        F.lit("active").alias("status"),
        F.col("created_at").cast("timestamp").alias("ordered_at"),
        _ts_text("created_at").alias("ordered_at_source"),
    )
    out = SilverOutput()
    out.add("silver.medication_order", rows)
    return out


def orders(df: DataFrame) -> SilverOutput:
    procedures = df.where(F.col("order_type").isin("IMG", "PROC", "OPS"))
    rows = procedures.select(
        *_lineage(procedures),
        F.col("order_id").alias("procedure_id"),
        F.col("visit_no").alias("encounter_id"),
        F.col("item_code").alias("source_code"),
        F.concat(F.lit("LOCAL:"), F.col("institution_code"), F.lit(":PROC")).alias(
            "source_vocabulary"
        ),
        F.col("item_name").alias("source_name"),
        F.lit("ordered").alias("status"),
        F.col("doctor_id").alias("provider_id"),
        F.col("order_time").cast("timestamp").alias("performed_at"),
        _ts_text("order_time").alias("performed_at_source"),
    )
    out = SilverOutput()
    out.add("silver.procedure", rows)
    return out


def departments(df: DataFrame) -> SilverOutput:
    rows = df.select(
        *_lineage(df),
        F.col("dept_code"),
        F.col("dept_name"),
        F.col("dept_name_en"),
        blank_to_null(F.col("ward_name")).alias("ward_name"),
    )
    out = SilverOutput()
    out.add("silver.dept", rows)
    return out


def staff(df: DataFrame) -> SilverOutput:
    rows = df.select(
        *_lineage(df),
        F.col("staff_id").alias("provider_id"),
        F.col("staff_name").alias("provider_name"),
        F.col("dept_code"),
        F.col("title"),
    )
    out = SilverOutput()
    out.add("silver.provider", rows)
    return out


#: Bronze HIS table -> its transform.
TRANSFORMS: dict[str, Callable[[DataFrame], SilverOutput]] = {
    "bronze.his_departments": departments,
    "bronze.his_staff": staff,
    "bronze.his_patients": patients,
    "bronze.his_visits": visits,
    "bronze.his_transfers": transfers,
    "bronze.his_diagnoses": diagnoses,
    "bronze.his_prescriptions": prescriptions,
    "bronze.his_orders": orders,
}
