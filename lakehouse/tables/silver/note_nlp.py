"""Silver tables the clinical NLP job (``lakehouse nlp``) derives from ``silver.note``.

- ``silver.note_deid``: each note's text with its PHI replaced by format-keeping surrogates
  (``models/nlp/deid.py``), dates moved by the person's shift of the de-identified views
  (``governance.person_keys``), so the dates in the text agree with the shifted dates of
  every view. ``text_deid`` is untagged: the view ``deid.silver_note_deid`` shows it next to
  the person's token and shifted dates; it is the note text analysts and model training
  read. A note the job could not process has no ``text_deid`` (never the raw text).
- ``silver.note_problem``: problems, diagnoses, symptoms and findings the NLP finds in notes,
  each with its FHIR ``Condition.verificationStatus`` (confirmed, refuted, provisional): a
  problem list from notes, kept apart from the coded ``silver.diagnosis``.

Both follow ``silver.note``'s keys (plus the span for problems); a deleted note's rows are
removed. They are silver (per source record, the patient as the source knew it), not gold,
whose OMOP tables are keyed by integer ids (``gold.note_nlp`` is written by the same job).
"""

from __future__ import annotations

from pyspark.sql.types import IntegerType, LongType, StringType, StructField, TimestampType

from lakehouse.tables.silver.common import (
    SILVER_CLUSTERING,
    SILVER_VOLATILE,
    encounter_column,
    record_keys,
    source_columns,
    timestamp_with_source,
)
from lakehouse.tables.spec import Phi, TableSpec, column

NOTE_KEY = record_keys("note_id")


def _note_columns() -> tuple[StructField, ...]:
    return (
        *source_columns(),
        column(
            "note_id",
            StringType(),
            "Id of the note in its source (silver.note).",
            nullable=False,
            phi=Phi.IDENTIFIER,
        ),
        column(
            "patient_key",
            StringType(),
            "Patient of the note, '<institution_code>|<patient_id>' as in silver.note: the "
            "person key of row policies and de-identified views (and of the date shift).",
            phi=Phi.IDENTIFIER,
        ),
        encounter_column(),
    )


def _run_columns() -> tuple[StructField, ...]:
    return (
        column(
            "nlp_system",
            StringType(),
            "Pipeline that produced the row: language and the versions of its rule files.",
        ),
        column(
            "source_updated_at",
            TimestampType(),
            "source_updated_at of the silver.note version processed (shifted in views).",
            phi=Phi.DATE,
        ),
        column("silver_run_id", StringType(), "ops.job_runs run that wrote this version."),
        column("processed_at", TimestampType(), "When this version was written."),
    )


NOTE_DEID = TableSpec(
    name="silver.note_deid",
    comment="One row per live silver.note: the note text de-identified (names, 身份证号, "
    "phones, addresses, visit numbers/MRNs, dates replaced by format-keeping surrogates, "
    "dates shifted by the person's shift of the de-identified views) and how the clinical "
    "NLP job processed it. Analysts read it through deid.silver_note_deid.",
    columns=(
        *_note_columns(),
        column("note_type", StringType(), "progress, nursing, radiology, discharge..."),
        column("language", StringType(), "zh or en, as in silver.note."),
        *timestamp_with_source("recorded_at", "When the note was written"),
        column(
            "text_deid",
            StringType(),
            "note_text with every PHI span the de-identifier found replaced by a surrogate "
            "(models/nlp/deid.py); null when the note was not processed (nlp_status).",
        ),
        column("phi_replacements", IntegerType(), "Number of PHI spans replaced."),
        column("entity_count", IntegerType(), "Entities the NLP found (rows in gold.note_nlp)."),
        column(
            "nlp_status",
            StringType(),
            "ok, empty (no text), unsupported_language (no pipeline) or failed.",
        ),
        column(
            "error_code",
            StringType(),
            "Catalogued code when nlp_status is not ok (LH-NLP-001 language, LH-NLP-003 "
            "processing failed).",
        ),
        *_run_columns(),
    ),
    keys=NOTE_KEY,
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)

NOTE_PROBLEM = TableSpec(
    name="silver.note_problem",
    comment="Problems, diagnoses, symptoms and findings mentioned in silver.note, with the "
    "FHIR Condition.verificationStatus of the mention (present or historical: confirmed; "
    "negated: refuted; possible: provisional). Mentions about family members or "
    "hypothetical ones are not the patient's and are not listed.",
    columns=(
        *_note_columns(),
        column("offset_start", IntegerType(), "First character of the mention.", nullable=False),
        column("offset_end", IntegerType(), "Character after the mention.", nullable=False),
        column("note_nlp_id", LongType(), "The mention's row in gold.note_nlp (note_nlp_id)."),
        column(
            "lexical_variant",
            StringType(),
            "The mention as written in the note.",
            phi=Phi.FREE_TEXT,
        ),
        column("label", StringType(), "CONDITION, SYMPTOM or FINDING."),
        column("concept_key", StringType(), "Lexicon concept (models/nlp/resources/lexicon.json)."),
        column("source_code", StringType(), "Code of the lexicon concept (ICD-10), if any."),
        column("source_vocabulary", StringType(), "Vocabulary of source_code (ICD10)."),
        column(
            "concept_id",
            LongType(),
            "Standard concept from the terminology service (vocab.concept); 0 when unmapped.",
        ),
        column("section", StringType(), "Note section of the mention (sections.json name)."),
        column("assertion", StringType(), "present, negated, possible or historical."),
        column(
            "verification_status",
            StringType(),
            "FHIR Condition.verificationStatus: confirmed, refuted or provisional.",
        ),
        *timestamp_with_source("recorded_at", "When the note was written"),
        *_run_columns(),
    ),
    keys=(*NOTE_KEY, "offset_start", "offset_end"),
    volatile=SILVER_VOLATILE,
    cluster_by=SILVER_CLUSTERING,
    person_key="patient_key",
)
