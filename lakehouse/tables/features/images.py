"""Pixel features of imaging studies: ``features.image_pixels`` and its quarantine.

``lakehouse/features/images.py`` decodes the landed DICOM file of each silver imaging study
(pixel data stays in the file, ``silver.imaging_series.pixel_data_refs``) on the executors
and writes one row per study: the first instance's pixels resampled to 64x64, scaled to
[0, 1] and stored as little-endian float32 bytes, with simple statistics. A file that cannot
be read or decoded lands in ``features.image_pixels_quarantine`` with its catalogued code
(LH-MMD-...), never the pixels or any patient value. Both tables are keyed by the study, so
reruns add only studies not yet there (docs/models.md, ADR 0024).
"""

from __future__ import annotations

from pyspark.sql.types import (
    BinaryType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    TimestampType,
)

from lakehouse.tables.spec import Phi, TableSpec, column

_STUDY_KEYS = ("institution_code", "source_system", "study_instance_uid")


def _study_columns() -> tuple[StructField, ...]:
    return (
        column("institution_code", StringType(), "Institution of the study.", nullable=False),
        column("source_system", StringType(), "Source system of the study (pacs).", nullable=False),
        column(
            "study_instance_uid",
            StringType(),
            "Study Instance UID (silver.imaging_study).",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "sop_instance_uid",
            StringType(),
            "SOP Instance UID of the instance decoded (the first of the study's first series).",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "patient_key",
            StringType(),
            "Patient of the study '<institution_code>|<patient_id>' (silver.person_index maps "
            "it to the person).",
            phi=Phi.IDENTIFIER,
        ),
        column(
            "study_at",
            TimestampType(),
            "When the study was performed (silver.imaging_study.study_at).",
            phi=Phi.DATE,
        ),
        column(
            "pixel_data_ref",
            StringType(),
            "The landed DICOM file the pixels were read from (bronze pixel_data_ref).",
        ),
        column(
            "file_sha256",
            StringType(),
            "SHA-256 of the file bytes read (null when the file could not be read).",
        ),
    )


IMAGE_PIXELS = TableSpec(
    name="features.image_pixels",
    comment="One row per silver imaging study whose DICOM file decoded: the pixels of its "
    "first instance resampled to 64x64, min-max scaled to [0, 1], as 4,096 little-endian "
    "float32 values, with the statistics of the stored pixels (multimodal models, ADR 0024).",
    columns=(
        *_study_columns(),
        column(
            "pixels",
            BinaryType(),
            "64*64 float32 little-endian, row-major, scaled (value - min) / (max - min) of the "
            "source pixels (0 when max = min).",
            nullable=False,
        ),
        column("rows", IntegerType(), "Rows of the source image."),
        column("columns", IntegerType(), "Columns of the source image."),
        column("source_min", DoubleType(), "Smallest source pixel value (after rescale slope)."),
        column("source_max", DoubleType(), "Largest source pixel value (after rescale slope)."),
        column("pixel_mean", DoubleType(), "Mean of the stored (scaled) pixels."),
        column("pixel_std", DoubleType(), "Standard deviation of the stored (scaled) pixels."),
        column("build_run_id", StringType(), "ops.job_runs run that wrote the row."),
        column("built_at", TimestampType(), "When the row was written."),
    ),
    keys=_STUDY_KEYS,
    cluster_by=("institution_code",),
    person_key="patient_key",
    volatile=("build_run_id", "built_at"),
)

IMAGE_PIXELS_QUARANTINE = TableSpec(
    name="features.image_pixels_quarantine",
    comment="Imaging studies whose DICOM file could not be read or decoded into pixels, with "
    "the catalogued code (LH-MMD-...) and a detail without patient data; a study fixed at the "
    "source and decoded later leaves the quarantine.",
    columns=(
        *_study_columns(),
        column("error_code", StringType(), "Catalogued error code, LH-MMD-nnn.", nullable=False),
        column("error_name", StringType(), "Name of the error code, e.g. IMAGE_UNREADABLE."),
        column("detail", StringType(), "Catalogued message: names the reason, no values."),
        column("build_run_id", StringType(), "ops.job_runs run that wrote the row."),
        column("built_at", TimestampType(), "When the row was written."),
    ),
    keys=_STUDY_KEYS,
    person_key="patient_key",
    volatile=("build_run_id", "built_at"),
)
