"""Test data of the EMPI tests: silver.patient-shaped rows from the truth and crafted ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.empi import identity
from lakehouse.silver.conform import address_parts, id_card_validity
from lakehouse.synthetic import HospitalConfig, generate
from lakehouse.tables.silver.patient import PATIENT
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import conform, ensure_table

EMPI_TABLES = (
    "silver.person_index",
    "silver.person_history",
    "silver.person_review",
    "silver.person_features",
    "ops.empi_progress",
)


def make_hospital(out: Path, patients: int = 60, seed: int = 11) -> Path:
    generate(out, HospitalConfig(patients=patients, sites=3, seed=seed, chunk_size=30))
    return out / "truth"


def fresh_empi(spark: SparkSession) -> None:
    for table in EMPI_TABLES:
        spark.sql(f"DROP TABLE IF EXISTS {table}")


def source_spec(unique: str) -> TableSpec:
    return dataclasses.replace(PATIENT, name=f"silver.empi_{unique}_patient")


def append(spark: SparkSession, spec: TableSpec, rows: DataFrame) -> None:
    """New source records (a plain append: the change feed shows them as inserts)."""
    ensure_table(spark, spec)
    conform(rows.drop("person_id"), spec).writeTo(spec.name).append()


def id_card(region: str, born: date, seq: int) -> str:
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + identity.check_character(first17)


def crafted(
    spark: SparkSession,
    rows: Sequence[Mapping[str, object]],
) -> DataFrame:
    """silver.patient-shaped rows from dicts of institution, source, patient_id, name,
    id_card_no, birth_date, sex_code, phone, address, person_id (the truth), updated."""
    full = [
        (
            r["institution"],
            r["source"],
            r["patient_id"],
            r.get("name"),
            r.get("id_card_no"),
            r.get("birth_date"),
            r.get("sex_code", "1"),
            r.get("phone"),
            r.get("address"),
            r["person_id"],
            r.get("updated", datetime(2026, 7, 1)),
        )
        for r in rows
    ]
    df = spark.createDataFrame(
        full,
        "institution_code string, source_system string, patient_id string, name string, "
        "id_card_no string, birth_date date, sex_code string, phone string, address string, "
        "person_id string, source_updated_at timestamp",
    )
    province, city, county = address_parts(F.col("address"))
    return df.select(
        "*",
        F.concat_ws("|", "institution_code", "patient_id").alias("patient_key"),
        id_card_validity(F.col("id_card_no")).alias("id_card_valid"),
        province.alias("address_province"),
        city.alias("address_city"),
        county.alias("address_county"),
        F.lit(False).alias("is_deleted"),
        F.lit("test").alias("bronze_table"),
    )
