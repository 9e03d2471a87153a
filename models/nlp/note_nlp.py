"""Pipeline output as OMOP NOTE_NLP rows and FHIR verification statuses, in Arrow batches.

``annotate_batches`` is what the Spark job over ``silver.note`` will hand to ``mapInArrow``:
it takes batches with ``note_id``, ``note_text`` and ``language`` and yields NOTE_NLP
batches, loading each language's pipeline once per process (``load_pipeline`` is cached).
The OMOP columns are kept (``offset``, ``lexical_variant``, ``term_exists``,
``term_temporal``, ``term_modifiers``, ...); concept ids are 0 until the terminology service
maps the source codes, which travel in ``concept_code``/``vocabulary_id``.

Mapping (OMOP CDM 5.4 NOTE_NLP conventions): ``term_exists`` is ``N`` when the mention is
negated, about someone else, hypothetical or only possible; ``term_temporal`` is ``past``
for historical mentions. FHIR ``Condition.verificationStatus``: present and historical
``confirmed``, negated ``refuted``, possible ``provisional``; family and hypothetical
mentions are not the patient's condition (no status); drugs, labs and the rest get none.
``snippet`` and ``lexical_variant`` are note text: run this on the de-identified note view
unless the table is governed as PHI.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from models.nlp.components import ASSERTED_LABELS
from models.nlp.pipeline import load_pipeline
from models.nlp.resources import versions

NOTE_NLP_SCHEMA = pa.schema(
    [
        ("note_id", pa.string()),
        ("section_concept_id", pa.int64()),
        ("snippet", pa.string()),
        ("offset", pa.string()),
        ("lexical_variant", pa.string()),
        ("note_nlp_concept_id", pa.int64()),
        ("note_nlp_source_concept_id", pa.int64()),
        ("nlp_system", pa.string()),
        ("nlp_date", pa.date32()),
        ("nlp_datetime", pa.timestamp("us")),
        ("term_exists", pa.string()),
        ("term_temporal", pa.string()),
        ("term_modifiers", pa.string()),
        # Extensions: the span, its label and code, the assertion and the FHIR status.
        ("start_char", pa.int32()),
        ("end_char", pa.int32()),
        ("label", pa.string()),
        ("concept_key", pa.string()),
        ("concept_code", pa.string()),
        ("vocabulary_id", pa.string()),
        ("section", pa.string()),
        ("assertion", pa.string()),
        ("verification_status", pa.string()),
    ]
)

_CONDITION_LABELS = ("CONDITION", "SYMPTOM", "FINDING")
_EXISTS = {"present": "Y", "historical": "Y"}
_VERIFICATION = {
    "present": "confirmed",
    "historical": "confirmed",
    "negated": "refuted",
    "possible": "provisional",
}


def modifiers(assertion: str, section: str | None) -> str:
    """``term_modifiers`` in OMOP's ``key=value`` list form."""
    parts = {
        "negated": str(assertion == "negated").lower(),
        "subject": "family" if assertion == "family" else "patient",
        "certainty": "possible" if assertion == "possible" else "certain",
        "conditional": str(assertion == "hypothetical").lower(),
        "temporal": "past" if assertion == "historical" else "present",
    }
    if section:
        parts["section"] = section
    return ",".join(f"{k}={v}" for k, v in parts.items())


def pipeline_version(trained: Path | None = None) -> str:
    """The rule files' versions, and the trained NER's folder name (``ner=<name>``) when one
    is attached: a change of either makes the NLP job process every note again."""
    rules = ";".join(f"{k}={v}" for k, v in sorted(versions().items()))
    return rules + (f";ner={Path(trained).name}" if trained is not None else "")


def nlp_system(lang: str, trained: Path | None = None) -> str:
    """``nlp_system`` of a row: the pipeline and :func:`pipeline_version`."""
    return f"lakehouse-clinical-{lang} ({pipeline_version(trained)})"


def annotate(
    note_id: str,
    text: str,
    lang: str,
    *,
    when: datetime,
    trained: Path | None = None,
    merge: str | None = None,
) -> list[dict[str, Any]]:
    """NOTE_NLP rows of one note: one per entity the ``lang`` pipeline finds (with the trained
    NER of ``trained`` merged by ``merge`` when given: settings ``nlp.trained_dir``/``merge``)."""
    doc = load_pipeline(lang, trained, merge)(text)
    system = nlp_system(lang, trained)
    rows = []
    for ent in doc.ents:
        assertion = ent._.assertion if ent.label_ in ASSERTED_LABELS else "present"
        sent = ent.sent
        rows.append(
            {
                "note_id": note_id,
                "section_concept_id": 0,
                "snippet": sent.text.strip()[:250],
                "offset": str(ent.start_char),
                "lexical_variant": ent.text,
                "note_nlp_concept_id": 0,
                "note_nlp_source_concept_id": 0,
                "nlp_system": system,
                "nlp_date": when.date(),
                "nlp_datetime": when,
                "term_exists": _EXISTS.get(assertion, "N"),
                "term_temporal": "past" if assertion == "historical" else "present",
                "term_modifiers": modifiers(assertion, ent._.section),
                "start_char": ent.start_char,
                "end_char": ent.end_char,
                "label": ent.label_,
                "concept_key": ent._.concept,
                "concept_code": ent._.code or ent._.concept,
                "vocabulary_id": ent._.system,
                "section": ent._.section,
                "assertion": assertion,
                "verification_status": _VERIFICATION.get(assertion)
                if ent.label_ in _CONDITION_LABELS
                else None,
            }
        )
    return rows


def annotate_batches(
    batches: Iterable[pa.RecordBatch], *, when: datetime
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: note batches (``note_id``, ``note_text``, ``language``) in,
    NOTE_NLP batches out (``when`` is the run's time). Notes in other languages are skipped.
    """
    stamp = when
    for batch in batches:
        cols = batch.to_pydict()
        rows: list[dict[str, Any]] = []
        for note_id, text, lang in zip(
            cols["note_id"], cols["note_text"], cols["language"], strict=True
        ):
            if text and lang in ("zh", "en"):
                rows.extend(annotate(note_id, text, lang, when=stamp))
        yield pa.RecordBatch.from_pylist(rows, schema=NOTE_NLP_SCHEMA)
