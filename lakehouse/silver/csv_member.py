"""Member sites' CSV exports (``bronze.csv_rows``) -> the conformed silver tables.

Which silver table a row goes to is told by its file name (``patients_00001.csv`` ->
silver.patient); which header holds which field is told by header synonyms. Both are data:
``lakehouse/resources/silver_csv_exports.yaml`` (:class:`ExportConfig`), so a member whose
export says 病人ID where another says 患者编号 is configuration, not code.

| export | silver table | record id | codes |
|---|---|---|---|
| patients | silver.patient | 患者编号 | |
| visits | silver.encounter | 就诊流水号 | 就诊类型 门诊/急诊/住院 -> outpatient/emergency/... |
| diagnoses | silver.diagnosis | 诊断流水号 | ZD-* -> ``LOCAL:<institution>:DX`` |
| labs | silver.lab_result | 检验流水号 | JY* -> ``LOCAL:<institution>:LAB`` |
| medications | silver.medication_order | 处方流水号 | YP* -> ``LOCAL:<institution>:DRUG`` |

Diagnosis, lab and medication exports name the visit, not the patient: ``patient_id``
comes from the file when it has the column, else from the visits rows of the same batch
(null when the visit is not in the batch; the silver job may fill it from silver.encounter).
``source_updated_at`` is the bronze ``ingested_at``: an export carries no row time, and a
re-export (new file, later landing) must win over the older one. Rows without their
record id are rejected (LH-SLV-031); rows of files no table claims too (LH-SLV-030).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.silver.base import SilverOutput, blank_to_null, patient_key
from lakehouse.silver.conform import (
    id_card_validity,
    parse_date,
    parse_number,
    parse_timestamp,
    phone_digits,
    reference_range,
)
from lakehouse.silver.member import file_name, lineage, reject_cases, sex_code

CONFIG_RESOURCE = "silver_csv_exports.yaml"
#: Local code kinds of the coded exports (``LOCAL:<institution>:<kind>``).
_KINDS = {"diagnoses": "DX", "labs": "LAB", "medications": "DRUG"}


class ExportTable(BaseModel):
    """One kind of member export: how to recognise its files and read its headers."""

    silver: str = Field(description="Silver table its rows go to.")
    file_prefixes: list[str] = Field(description="File-name prefixes that mark the export.")
    id: str = Field(description="Field that keys the silver row.")
    required: list[str] = Field(default_factory=list, description="Fields a row must have.")
    fields: dict[str, list[str]] = Field(description="Field -> header synonyms, in order.")


class ExportConfig(BaseModel):
    """The member CSV exports silver knows, and the value domains of their coded text."""

    version: int
    tables: dict[str, ExportTable]
    values: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ExportConfig:
        """The packaged configuration, or the YAML at ``path``."""
        if path is None:
            text = (resources.files("lakehouse") / "resources" / CONFIG_RESOURCE).read_text("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return cls.model_validate(yaml.safe_load(text))


@cache
def default_config() -> ExportConfig:
    return ExportConfig.load()


class _Reader:
    """Column expressions over ``values`` for one export table."""

    def __init__(self, table: ExportTable, cfg: ExportConfig) -> None:
        self.table, self.cfg = table, cfg

    def read(self, name: str) -> Column:
        """The field's value: the first synonym header present, trimmed, blank -> null."""
        headers = self.table.fields.get(name, [])
        if not headers:
            return F.lit(None).cast("string")
        return F.coalesce(
            *[blank_to_null(F.try_element_at(F.col("values"), F.lit(h))) for h in headers]
        )

    def with_fields(self, df: DataFrame) -> DataFrame:
        """``df`` with one ``_f_<field>`` column per configured field (read once)."""
        return df.select("*", *[self.read(n).alias(f"_f_{n}") for n in self.table.fields])

    def __call__(self, name: str) -> Column:
        """The field's column (after :meth:`with_fields`); null when not configured."""
        if name not in self.table.fields:
            return F.lit(None).cast("string")
        return F.col(f"_f_{name}")

    def domain(self, domain: str, c: Column) -> Column:
        mapping = self.cfg.values.get(domain, {})
        pairs = [F.lit(x) for k, v in mapping.items() for x in (str(k), str(v))]
        return F.try_element_at(F.create_map(*pairs), c) if pairs else F.lit(None)


def _common(patient: Column) -> list[Column]:
    return [
        F.col("institution_code"),
        F.col("source_system"),
        patient_key(F.col("institution_code"), patient).alias("patient_key"),
        patient.alias("patient_id"),
    ]


def _local(kind: str) -> Column:
    return F.concat(F.lit("LOCAL:"), F.col("institution_code"), F.lit(f":{kind}"))


def _patients(df: DataFrame, f: _Reader) -> DataFrame:
    pid, card, sex = f("patient_id"), f("id_card_no"), f("sex")
    identifiers = F.map_filter(
        F.create_map(
            F.lit("MR"),
            pid,
            F.lit("urn:oid:2.16.156.10011.1.3"),
            card,
            F.lit("insurance"),
            f("insurance_no"),
        ),
        lambda _, v: v.isNotNull(),
    )
    return df.select(
        *_common(pid),
        pid.alias("source_record_id"),
        identifiers.alias("identifiers"),
        card.alias("id_card_no"),
        id_card_validity(card).alias("id_card_valid"),
        f("name").alias("name"),
        sex_code(sex).alias("sex_code"),
        sex.alias("sex_source"),
        parse_date(f("birth_date")).alias("birth_date"),
        f("birth_date").alias("birth_date_source"),
        phone_digits(f("phone")).alias("phone"),
        f("address").alias("address"),
        f("ethnicity").alias("ethnicity"),
        f("insurance_type").alias("insurance_type"),
        f("insurance_no").alias("insurance_no"),
        *lineage(F.col("ingested_at")),
    )


def _visits(df: DataFrame, f: _Reader) -> DataFrame:
    cls_source = f("encounter_class")
    klass = f.domain("encounter_class", cls_source)
    start, end = f("start_at"), f("end_at")
    inpatient = klass == "inpatient"
    return df.select(
        *_common(f("patient_id")),
        f("encounter_id").alias("encounter_id"),
        klass.alias("encounter_class"),
        cls_source.alias("encounter_class_source"),
        F.when(end.isNotNull(), "finished").otherwise("in-progress").alias("status"),
        f("dept_code").alias("dept_code"),
        f("dept_name").alias("dept_name"),
        f("provider_id").alias("attending_provider_id"),
        f("provider_name").alias("attending_provider_name"),
        parse_timestamp(start).alias("start_at"),
        start.alias("start_at_source"),
        parse_timestamp(end).alias("end_at"),
        F.when(inpatient, parse_timestamp(start)).alias("admit_at"),
        F.when(inpatient, parse_timestamp(end)).alias("discharge_at"),
        f("bed_no").alias("bed_no"),
        *lineage(F.col("ingested_at")),
    )


def _diagnoses(df: DataFrame, f: _Reader) -> DataFrame:
    primary_source = f("primary")
    primary = f.domain("primary", primary_source) == "True"
    when = f("diagnosed_at")
    return df.select(
        *_common(F.col("visit_patient_id")),
        f("diagnosis_id").alias("diagnosis_id"),
        f("encounter_id").alias("encounter_id"),
        f("code").alias("source_code"),
        F.when(f("code").isNotNull(), _local("DX")).alias("source_vocabulary"),
        f("name").alias("source_name"),
        F.when(primary_source.isNotNull(), F.when(primary, "primary").otherwise("secondary")).alias(
            "diagnosis_type"
        ),
        F.when(primary_source.isNotNull(), primary).alias("is_primary"),
        parse_timestamp(when).alias("diagnosed_at"),
        when.alias("diagnosed_at_source"),
        *lineage(F.col("ingested_at")),
    )


def _labs(df: DataFrame, f: _Reader) -> DataFrame:
    value, rng, flag = f("value"), f("range"), f("flag")
    number = parse_number(value)
    low, high = reference_range(rng)
    collected = f("collected_at")
    return df.select(
        *_common(F.col("visit_patient_id")),
        f("result_id").alias("result_id"),
        f("encounter_id").alias("encounter_id"),
        f("code").alias("test_source_code"),
        F.when(f("code").isNotNull(), _local("LAB")).alias("test_source_vocabulary"),
        f("name").alias("test_source_name"),
        F.when(value.isNotNull(), F.when(number.isNotNull(), "NM").otherwise("ST")).alias(
            "value_type"
        ),
        value.alias("value_source"),
        number.alias("value_as_number"),
        f("unit").alias("unit_source"),
        rng.alias("reference_range_source"),
        low.alias("reference_low"),
        high.alias("reference_high"),
        F.coalesce(f.domain("flag", flag), flag).alias("abnormal_flag"),
        F.lit("F").alias("result_status"),
        parse_timestamp(collected).alias("collected_at"),
        collected.alias("collected_at_source"),
        parse_timestamp(f("reported_at")).alias("reported_at"),
        *lineage(F.col("ingested_at")),
    )


def _medications(df: DataFrame, f: _Reader) -> DataFrame:
    ordered = f("ordered_at")
    return df.select(
        *_common(F.col("visit_patient_id")),
        f("medication_order_id").alias("medication_order_id"),
        f("encounter_id").alias("encounter_id"),
        f("code").alias("drug_source_code"),
        F.when(f("code").isNotNull(), _local("DRUG")).alias("drug_source_vocabulary"),
        f("name").alias("drug_source_name"),
        parse_number(f("dose")).alias("dose"),
        f("dose_unit").alias("dose_unit"),
        f("route").alias("route"),
        f("frequency").alias("frequency"),
        F.floor(parse_number(f("days"))).try_cast("int").alias("days_supply"),
        f("prescriber_id").alias("prescriber_id"),
        parse_timestamp(ordered).alias("ordered_at"),
        ordered.alias("ordered_at_source"),
        *lineage(F.col("ingested_at")),
    )


_BUILDERS = {
    "patients": _patients,
    "visits": _visits,
    "diagnoses": _diagnoses,
    "labs": _labs,
    "medications": _medications,
}


def export_table(path: Column, cfg: ExportConfig) -> Column:
    """The export table a file belongs to (by file-name prefix, case-insensitive); null when
    none claims it. Longer prefixes are tried first."""
    name = F.lower(file_name(path))
    prefixes = sorted(
        ((p.lower(), t) for t, spec in cfg.tables.items() for p in spec.file_prefixes),
        key=lambda x: -len(x[0]),
    )
    expr: Column = F.lit(None).cast("string")
    for prefix, table in reversed(prefixes):
        expr = F.when(name.startswith(prefix), F.lit(table)).otherwise(expr)
    return expr


def _visit_patients(rows: DataFrame, cfg: ExportConfig) -> DataFrame:
    """(institution_code, encounter_id) -> patient_id from the batch's visits rows."""
    f = _Reader(cfg.tables["visits"], cfg)
    return (
        rows.where(F.col("export") == "visits")
        .select(
            F.col("institution_code").alias("v_institution"),
            f.read("encounter_id").alias("v_encounter_id"),
            f.read("patient_id").alias("v_patient_id"),
        )
        .where(F.col("v_encounter_id").isNotNull() & F.col("v_patient_id").isNotNull())
        .dropDuplicates(["v_institution", "v_encounter_id"])
    )


def transform_csv(bronze: DataFrame, *, config: ExportConfig | None = None) -> SilverOutput:
    """``bronze.csv_rows`` rows -> silver patient, encounter, diagnosis, lab_result and
    medication_order rows, and rejects (LH-SLV-030 unknown export, LH-SLV-031 missing
    required field).

    Needs the bronze columns values, institution_code, source_system, file_path,
    file_sha256, record_index and ingested_at.
    """
    cfg = config or default_config()
    out = SilverOutput()
    rows = bronze.select("*", export_table(F.col("file_path"), cfg).alias("export"))
    common = {"count": F.col("record_index"), "file": file_name(F.col("file_path"))}
    out.reject(
        reject_cases(
            rows.where(F.col("export").isNull()),
            F.lit(ErrorCode.SILVER_CSV_UNKNOWN_EXPORT.name),
            {ErrorCode.SILVER_CSV_UNKNOWN_EXPORT: {}},
            **common,
        )
    )
    visits = _visit_patients(rows, cfg)
    for name, table in cfg.tables.items():
        if name not in _BUILDERS:
            continue
        f = _Reader(table, cfg)
        df = f.with_fields(rows.where(F.col("export") == name))
        missing: Column = F.lit(None).cast("string")
        for field in reversed(table.required):
            missing = F.when(f(field).isNull(), F.lit(field)).otherwise(missing)
        df = df.withColumn("missing_field", missing)
        out.reject(
            reject_cases(
                df.where(F.col("missing_field").isNotNull()),
                F.lit(ErrorCode.SILVER_CSV_MISSING_FIELD.name),
                {
                    ErrorCode.SILVER_CSV_MISSING_FIELD: {
                        "name": F.lit(name),
                        "column": F.col("missing_field"),
                    }
                },
                **common,
            )
        )
        good = df.where(F.col("missing_field").isNull())
        if name in _KINDS:
            good = good.join(
                visits,
                (F.col("institution_code") == F.col("v_institution"))
                & (f("encounter_id") == F.col("v_encounter_id")),
                "left",
            ).withColumn("visit_patient_id", F.coalesce(f("patient_id"), F.col("v_patient_id")))
        out.add(table.silver, _BUILDERS[name](good, f))
    return out
