"""What every silver table shares: record identity, patient reference, lineage, deletion.

Silver keeps one row per *source record*: the same encounter delivered by the HIS, the LIS
(ADT) and a CDA document is three rows, each with its source's lineage; gold and the master
patient index decide which rows are the same thing. Keys are therefore always
``(institution_code, source_system, <record id>)``.
"""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    LongType,
    StringType,
    StructField,
    TimestampType,
)

from lakehouse.tables.spec import Phi, column

#: Layout of every silver table: tenants and sources are the common filters, patients the
#: common join (liquid clustering, so the layout holds at billions of rows and can change).
SILVER_CLUSTERING = ("institution_code", "source_system")
#: Columns that say which run wrote a row, not what it says: a rerun does not rewrite them.
SILVER_VOLATILE = ("silver_run_id", "processed_at")


def record_keys(record_id: str) -> tuple[str, str, str]:
    """Merge keys of a silver table whose record id column is ``record_id``."""
    return ("institution_code", "source_system", record_id)


def source_columns() -> tuple[StructField, ...]:
    """Institution and source system: the first two key columns of every silver table."""
    return (
        column(
            "institution_code",
            StringType(),
            "Institution (alliance member) the record belongs to, e.g. H0001.",
            nullable=False,
        ),
        column(
            "source_system",
            StringType(),
            "Source system that delivered the record: his, lis, emr, notes, pacs, fhir, csv.",
            nullable=False,
        ),
    )


def patient_columns(*, required: bool = False) -> tuple[StructField, ...]:
    """The patient a record belongs to, as the source identified them (before the EMPI)."""
    return (
        column(
            "patient_key",
            StringType(),
            "Institution-scoped patient reference '<institution_code>|<patient_id>': the "
            "person key of row policies and de-identified views until the master patient "
            "index assigns person ids.",
            nullable=not required,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "patient_id",
            StringType(),
            "The institution's patient identifier (MRN / 患者编号; for FHIR sources the "
            "Patient resource id every reference uses) as recorded by the source.",
            nullable=not required,
            phi=Phi.IDENTIFIER,
        ),
    )


def encounter_column(*, required: bool = False) -> StructField:
    return column(
        "encounter_id",
        StringType(),
        "Visit number of the encounter (门(急)诊号 / 住院号) the record belongs to.",
        nullable=not required,
        phi=Phi.IDENTIFIER,
    )


def lineage_columns(*, of_person: bool = True) -> tuple[StructField, ...]:
    """Where the row came from and when it changed: bronze record, source time, run.

    ``of_person``: the row is a person's record, so its source time is a date of that
    person's care (tagged ``Phi.DATE``: shifted in the de-identified views); reference tables
    (organizations, departments, staff) pass False.
    """
    return (
        column(
            "bronze_table",
            StringType(),
            "Bronze table the row was derived from.",
            nullable=False,
        ),
        column(
            "bronze_file_sha256",
            StringType(),
            "file_sha256 of the bronze record (file sources); row_sha256 for database rows.",
        ),
        column(
            "bronze_record_index",
            LongType(),
            "record_index of the bronze record (file sources); null for database rows.",
        ),
        column(
            "source_updated_at",
            TimestampType(),
            "When the source says this version was made (HL7 MSH-7, HIS updated_at, FHIR "
            "meta.lastUpdated, file time): the newest version of a key wins.",
            phi=Phi.DATE if of_person else None,
        ),
        column(
            "is_deleted",
            BooleanType(),
            "True when the source deleted or cancelled the record (tombstone kept for "
            "downstream deletes).",
            nullable=False,
        ),
        column("silver_run_id", StringType(), "ops.job_runs run that wrote this version."),
        column("processed_at", TimestampType(), "When this version was written to silver."),
    )


def coded_columns(prefix: str, what: str) -> tuple[StructField, ...]:
    """A code as the source sent it and its standard concept from the terminology service."""
    p = f"{prefix}_" if prefix else ""
    return (
        column(f"{p}source_code", StringType(), f"{what} code as the source sent it."),
        column(
            f"{p}source_vocabulary",
            StringType(),
            f"Vocabulary of the source {what.lower()} code (ICD10, LOINC, ATC, "
            "LOCAL:<institution>:<kind>...).",
        ),
        column(f"{p}source_name", StringType(), f"{what} name as the source sent it."),
        column(
            f"{p}source_concept_id",
            LongType(),
            f"The source {what.lower()} code's own concept in vocab.concept (local concepts "
            "included), whether or not it is standard; null when the code is unknown.",
        ),
        column(
            f"{p}concept_id",
            LongType(),
            f"Standard concept of the {what.lower()} (vocab.concept); null when unmapped.",
        ),
        column(f"{p}standard_code", StringType(), f"Standard code of the {what.lower()}."),
        column(
            f"{p}standard_vocabulary", StringType(), f"Vocabulary of the standard {what.lower()}."
        ),
        column(f"{p}standard_name", StringType(), f"Name of the standard {what.lower()} concept."),
        column(
            f"{p}map_status",
            StringType(),
            "standard (the source code is standard), mapped (through source_to_concept_map), "
            "unmapped (queued for review) or invalid (expired on the event date).",
        ),
    )


def timestamp_with_source(
    name: str, what: str, *, ws445: str | None = None
) -> tuple[StructField, StructField]:
    """A normalized timestamp (session time zone) and the original text it was read from."""
    return (
        column(name, TimestampType(), f"{what}, normalized.", phi=Phi.DATE, ws445=ws445),
        column(f"{name}_source", StringType(), f"{what} as the source wrote it.", phi=Phi.DATE),
    )
