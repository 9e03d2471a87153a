"""``silver.clinical_document`` (CDA header and sections) and ``silver.note`` (free text)."""

from __future__ import annotations

from pyspark.sql.types import ArrayType, IntegerType, StringType, StructField, StructType

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

SECTION = StructType(
    [
        StructField("code", StringType()),
        StructField("code_system", StringType()),
        StructField("title", StringType()),
        StructField("text", StringType()),
    ]
)

CLINICAL_DOCUMENT = TableSpec(
    name="silver.clinical_document",
    comment="One row per CDA R2 document (WS/T 500 shared documents, C-CDA): header fields, "
    "the people and organizations in it, and its sections with their narrative text. The "
    "coded entries go to silver.diagnosis and the other coded tables.",
    columns=(
        *source_columns(),
        column(
            "document_id",
            StringType(),
            "id/@root '^' id/@extension.",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        column("document_type_code", StringType(), "code/@code (C0002, C0034, 34133-9...)."),
        column("document_type_system", StringType(), "code/@codeSystem."),
        column("template_ids", ArrayType(StringType()), "templateId/@root values."),
        column("title", StringType(), "Document title.", phi=Phi.FREE_TEXT),
        *timestamp_with_source("effective_at", "effectiveTime of the document"),
        column("set_id", StringType(), "setId: the document's version chain.", phi=Phi.IDENTIFIER),
        column("version_number", IntegerType(), "versionNumber/@value."),
        column("confidentiality_code", StringType(), "confidentialityCode/@code (N, R, V)."),
        column("language_code", StringType(), "languageCode/@code (zh-CN, en-US)."),
        column(
            "id_card_no", StringType(), "身份证件号码 in recordTarget, if any.", phi=Phi.IDENTIFIER
        ),
        column("patient_name", StringType(), "Patient name in recordTarget.", phi=Phi.NAME),
        column("author_id", StringType(), "Author's staff id."),
        column("author_name", StringType(), "Author's name.", phi=Phi.NAME),
        column("custodian_code", StringType(), "Custodian organization id."),
        column("custodian_name", StringType(), "Custodian organization name."),
        column(
            "sections",
            ArrayType(SECTION),
            "Sections in document order: code, code system, title and narrative text.",
            phi=Phi.FREE_TEXT,
        ),
        *lineage_columns(),
    ),
    keys=record_keys("document_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

NOTE = TableSpec(
    name="silver.note",
    comment="One row per free-text clinical note (progress, nursing, radiology report; "
    "Chinese or English), the input of clinical NLP and note search.",
    columns=(
        *source_columns(),
        column(
            "note_id",
            StringType(),
            "Id of the note in its source (file stem).",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        *patient_columns(),
        encounter_column(),
        column("note_type", StringType(), "progress, nursing, radiology, discharge..."),
        column("note_title", StringType(), "First line / title of the note.", phi=Phi.FREE_TEXT),
        column("language", StringType(), "zh or en (detected from the text)."),
        column("note_text", StringType(), "The note's full text.", phi=Phi.FREE_TEXT),
        column("char_count", IntegerType(), "Length of note_text in characters."),
        column(
            "author_name", StringType(), "Signing clinician, when the note names one.", phi=Phi.NAME
        ),
        *timestamp_with_source("recorded_at", "When the note was written"),
        *lineage_columns(),
    ),
    keys=record_keys("note_id"),
    sequence_by="source_updated_at",
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)
