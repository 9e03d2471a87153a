"""``silver.imaging_study`` and ``silver.imaging_series``: DICOM studies, pixel data by path."""

from __future__ import annotations

from pyspark.sql.types import ArrayType, IntegerType, StringType

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

IMAGING_STUDY = TableSpec(
    name="silver.imaging_study",
    comment="One row per DICOM study (from the instances landed in bronze): patient, "
    "accession, modality, description, counts.",
    columns=(
        *source_columns(),
        column(
            "study_instance_uid",
            StringType(),
            "(0020,000D) Study Instance UID.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        column(
            "accession_number", StringType(), "(0008,0050) Accession Number.", phi=Phi.IDENTIFIER
        ),
        column(
            "patient_name",
            StringType(),
            "(0010,0010) decoded (ideographic part if any).",
            phi=Phi.NAME,
        ),
        column("modalities", ArrayType(StringType()), "Modalities in the study (CR, CT...)."),
        column("study_description", StringType(), "(0008,1030) Study Description."),
        column("body_part", StringType(), "(0018,0015) Body Part Examined."),
        *timestamp_with_source("study_at", "(0008,0020)+(0008,0030) Study date and time"),
        column("series_count", IntegerType(), "Series in the study."),
        column("instance_count", IntegerType(), "Instances (images) in the study."),
        *lineage_columns(),
    ),
    keys=record_keys("study_instance_uid"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

IMAGING_SERIES = TableSpec(
    name="silver.imaging_series",
    comment="One row per DICOM series: modality, body part, instance count and where each "
    "instance's pixel data stays (the landed file).",
    columns=(
        *source_columns(),
        column(
            "series_instance_uid",
            StringType(),
            "(0020,000E) Series Instance UID.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "study_instance_uid",
            StringType(),
            "(0020,000D) Study Instance UID.",
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        column("modality", StringType(), "(0008,0060) Modality."),
        column("series_description", StringType(), "(0008,103E) Series Description."),
        column("body_part", StringType(), "(0018,0015) Body Part Examined."),
        column("instance_count", IntegerType(), "Instances in the series."),
        column(
            "sop_instance_uids",
            ArrayType(StringType()),
            "SOP Instance UIDs, sorted.",
            phi=Phi.RAW,
        ),
        column(
            "pixel_data_refs",
            ArrayType(StringType()),
            "Files holding the instances' pixel data, in sop_instance_uids order (file names "
            "may carry visit numbers: never shown to analysts).",
            phi=Phi.RAW,
        ),
        *lineage_columns(),
    ),
    keys=record_keys("series_instance_uid"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)
