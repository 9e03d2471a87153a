"""One note in, its entities and its de-identified text out, in Arrow batches.

``process_batches`` is the ``mapInArrow`` body of the NLP job (``models/nlp/spark_job.py``):
Python is needed here (spaCy, jieba, Presidio), and ``mapInArrow`` hands it whole batches,
so each executor process loads the zh and en pipelines and the PHI analyzer once
(``load_pipeline`` and ``analyzer`` are cached per process), never per row or batch.

Each input row is a note (keys, ``patient_key``, ``language``, ``note_text``,
``shift_days``); each output row is the same note with ``nlp_status``, ``error_code``,
``text_deid``, ``phi_replacements`` and its ``entities`` (an array of structs, one per
entity, offsets into ``note_text``). A note that fails is reported (status ``failed``,
``LH-NLP-003``) and the batch goes on; nothing from the note's text is logged.

Each note gets its own :class:`~models.nlp.deid.Deidentifier`, so its de-identified text
depends only on the note, the key and the person (never on which notes share a batch):
reruns give the same text, and the job's MERGEs find nothing to change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa

from lakehouse.errors import ErrorCode
from lakehouse.governance.deid.person_keys import derive
from models.nlp.deid import Deidentifier
from models.nlp.note_nlp import annotate, nlp_system
from models.nlp.pipeline import NerModel

logger = logging.getLogger(__name__)

LANGS = ("zh", "en")
LEXICAL_MAX = 250  # OMOP NOTE_NLP.lexical_variant and snippet are varchar(250)

ENTITY = pa.struct(
    [
        ("start_char", pa.int32()),
        ("end_char", pa.int32()),
        ("lexical_variant", pa.string()),
        ("snippet", pa.string()),
        ("label", pa.string()),
        ("concept_key", pa.string()),
        ("concept_code", pa.string()),
        ("vocabulary_id", pa.string()),
        ("section", pa.string()),
        ("assertion", pa.string()),
        ("term_exists", pa.string()),
        ("term_temporal", pa.string()),
        ("term_modifiers", pa.string()),
        ("verification_status", pa.string()),
    ]
)

NOTE_KEYS = ("institution_code", "source_system", "note_id")

#: Output of :func:`process_batches` (the Spark schema is derived from it).
RESULT_SCHEMA = pa.schema(
    [
        *[(k, pa.string()) for k in NOTE_KEYS],
        ("nlp_status", pa.string()),
        ("error_code", pa.string()),
        ("nlp_system", pa.string()),
        ("text_deid", pa.string()),
        ("phi_replacements", pa.int32()),
        ("entities", pa.list_(ENTITY)),
    ]
)

_WHEN = datetime(1970, 1, 1)  # annotate's nlp_datetime: the job stamps its own


def process_note(
    text: str | None,
    lang: str | None,
    person: str,
    shift_days: int | None,
    key: bytes,
    model: NerModel | None = None,
) -> dict[str, Any]:
    """Status, de-identified text and entities of one note (see the module docstring);
    ``model``: the trained NER to merge with the rules (default: the rules alone)."""
    trained, merge = model if model is not None else (None, None)
    out: dict[str, Any] = {
        "nlp_status": "ok",
        "error_code": None,
        "nlp_system": None,
        "text_deid": None,
        "phi_replacements": 0,
        "entities": [],
    }
    if not text or not text.strip():
        out["nlp_status"] = "empty"
        return out
    if lang not in LANGS:
        out["nlp_status"], out["error_code"] = (
            "unsupported_language",
            ErrorCode.NLP_LANGUAGE_UNSUPPORTED.id,
        )
        return out
    stage = "entities"
    try:
        rows = annotate("", text, lang, when=_WHEN, trained=trained, merge=merge)
        stage = "de-identification"
        result = Deidentifier(key=key).deidentify(text, lang, person, shift_days=shift_days)
    except Exception as exc:  # one bad note must not fail the batch: reported, counted
        logger.warning("a note failed in %s: %s", stage, type(exc).__name__)
        out["nlp_status"], out["error_code"] = "failed", ErrorCode.NLP_NOTE_FAILED.id
        return out
    out["nlp_system"] = nlp_system(lang, trained)
    out["text_deid"] = result.text
    out["phi_replacements"] = len(result.replacements)
    out["entities"] = [
        {
            "start_char": r["start_char"],
            "end_char": r["end_char"],
            "lexical_variant": r["lexical_variant"][:LEXICAL_MAX],
            "snippet": r["snippet"][:LEXICAL_MAX],
            "label": r["label"],
            "concept_key": r["concept_key"],
            "concept_code": r["concept_code"] if r["vocabulary_id"] else None,
            "vocabulary_id": r["vocabulary_id"],
            "section": r["section"],
            "assertion": r["assertion"],
            "term_exists": r["term_exists"],
            "term_temporal": r["term_temporal"],
            "term_modifiers": r["term_modifiers"],
            "verification_status": r["verification_status"],
        }
        for r in rows
    ]
    return out


def process_batches(
    key: bytes, max_shift: int, model: NerModel | None = None
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function: note batches in, :data:`RESULT_SCHEMA` batches out.

    ``model``: ``(trained folder, merge policy)`` of settings ``nlp.trained_dir``/``nlp.merge``
    (:func:`ner_model`); each worker process loads that pipeline once.

    ``shift_days`` is the person's stored shift (``governance.person_keys``); when the
    person is not keyed yet it is derived here exactly as the keys refresh will store it
    (same key, same ``max_shift``), so text dates and view dates agree either way.
    """

    def shift_of(person: str, stored: int | None) -> int | None:
        if stored is not None or not person:
            return stored
        return derive(key, person, max_shift).shift_days

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            cols = batch.to_pydict()
            results = [
                process_note(
                    text,
                    lang,
                    person or "",
                    shift_of(person or "", stored),
                    key,
                    model,
                )
                for text, lang, person, stored in zip(
                    cols["note_text"],
                    cols["language"],
                    cols["patient_key"],
                    cols["shift_days"],
                    strict=True,
                )
            ]
            data: dict[str, list[Any]] = {k: cols[k] for k in NOTE_KEYS}
            for name in RESULT_SCHEMA.names[len(NOTE_KEYS) :]:
                data[name] = [r[name] for r in results]
            yield pa.RecordBatch.from_pydict(data, schema=RESULT_SCHEMA)

    return run
