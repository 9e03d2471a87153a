"""DICOM instances (``bronze.pacs_dicom_instances``) -> imaging study and series.

Studies and series are aggregates of instances, so the silver job hands this transform
every bronze instance of the studies a batch touched (``widen_to_studies``), not just the
new ones: a series that gains an image later is recomputed whole. Pixel data stays in the
landed file (``pixel_data_refs``). Person names are read as their ideographic group when
the PN value has one (``DENG^HUAHAO=邓^华浩`` -> 邓华浩). The encounter is the visit number in
Admission ID (0038,0010) when the modality sends it.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.silver.base import SilverOutput, blank_to_null, patient_key
from lakehouse.silver.conform import parse_timestamp


def _tag(key: str) -> Column:
    return blank_to_null(F.col("tags").getItem(key))


def person_name(pn: Column) -> Column:
    """A DICOM PN as display text: the ideographic group if present, else the alphabetic."""
    groups = F.split(pn, "=")
    ideographic = F.regexp_replace(F.element_at(groups, 2), r"\^", "")
    alphabetic = F.trim(F.regexp_replace(F.element_at(groups, 1), r"\^+", " "))
    return F.coalesce(
        blank_to_null(F.when(F.size(groups) >= 2, ideographic)), blank_to_null(alphabetic)
    )


def widen_to_studies(changes: DataFrame, table: DataFrame) -> DataFrame:
    """Every bronze instance of the studies present in ``changes``."""
    studies = changes.select("institution_code", "study_instance_uid").distinct()
    return table.join(studies, ["institution_code", "study_instance_uid"], "left_semi")


def transform_dicom(bronze: DataFrame) -> SilverOutput:
    """Instances -> one silver.imaging_series row per series, one imaging_study per study."""
    study_at_text = F.concat_ws(
        "",
        _tag("0008,0020 StudyDate"),
        F.substring(F.coalesce(_tag("0008,0030 StudyTime"), F.lit("")), 1, 6),
    )
    inst = bronze.where(F.col("study_instance_uid").isNotNull()).select(
        "institution_code",
        "study_instance_uid",
        "series_instance_uid",
        "sop_instance_uid",
        "modality",
        "pixel_data_ref",
        "file_sha256",
        "record_index",
        "ingested_at",
        F.col("patient_id"),
        person_name(F.col("patient_name")).alias("patient_name"),
        _tag("0008,0050 AccessionNumber").alias("accession_number"),
        _tag("0038,0010 AdmissionID").alias("encounter_id"),
        _tag("0008,1030 StudyDescription").alias("study_description"),
        _tag("0008,103E SeriesDescription").alias("series_description"),
        _tag("0018,0015 BodyPartExamined").alias("body_part"),
        blank_to_null(study_at_text).alias("study_at_source"),
    )
    common = [
        F.first("patient_id", ignorenulls=True).alias("patient_id"),
        F.max("body_part").alias("body_part"),
        F.min(F.struct("file_sha256", "record_index")).alias("first"),
        F.max("ingested_at").alias("source_updated_at"),
    ]
    series = inst.groupBy("institution_code", "series_instance_uid").agg(
        F.first("study_instance_uid", ignorenulls=True).alias("study_instance_uid"),
        F.first("modality", ignorenulls=True).alias("modality"),
        F.max("series_description").alias("series_description"),
        F.countDistinct("sop_instance_uid").cast("int").alias("instance_count"),
        F.array_sort(F.collect_set(F.struct("sop_instance_uid", "pixel_data_ref"))).alias(
            "instances"
        ),
        *common,
    )
    studies = inst.groupBy("institution_code", "study_instance_uid").agg(
        F.max("accession_number").alias("accession_number"),
        F.max("encounter_id").alias("encounter_id"),
        F.max("patient_name").alias("patient_name"),
        F.array_sort(F.collect_set("modality")).alias("modalities"),
        F.max("study_description").alias("study_description"),
        F.max("study_at_source").alias("study_at_source"),
        F.countDistinct("series_instance_uid").cast("int").alias("series_count"),
        F.countDistinct("sop_instance_uid").cast("int").alias("instance_count"),
        *common,
    )

    def lineage() -> list[Column]:
        return [
            F.lit("pacs").alias("source_system"),
            patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
            F.col("first.file_sha256").alias("bronze_file_sha256"),
            F.col("first.record_index").alias("bronze_record_index"),
            F.lit(False).alias("is_deleted"),
        ]

    out = SilverOutput()
    out.add(
        "silver.imaging_series",
        series.select(
            "institution_code",
            "series_instance_uid",
            "study_instance_uid",
            "patient_id",
            "modality",
            "series_description",
            "body_part",
            "instance_count",
            F.col("instances.sop_instance_uid").alias("sop_instance_uids"),
            F.col("instances.pixel_data_ref").alias("pixel_data_refs"),
            "source_updated_at",
            *lineage(),
        ),
    )
    out.add(
        "silver.imaging_study",
        studies.select(
            "institution_code",
            "study_instance_uid",
            "patient_id",
            "encounter_id",
            "accession_number",
            "patient_name",
            "modalities",
            "study_description",
            "body_part",
            parse_timestamp(F.col("study_at_source")).alias("study_at"),
            "study_at_source",
            "series_count",
            "instance_count",
            "source_updated_at",
            *lineage(),
        ),
    )
    return out
