"""The English pipeline end to end on the Synthea notes of ../shared/refdata."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest

from models.nlp import load_pipeline
from models.nlp.deid import Deidentifier, leaks

pytestmark = pytest.mark.refdata


def _notes(refdata: Path, limit: int) -> list[str]:
    path = refdata / "fhir-bulk-synthea" / "DocumentReference.000.ndjson"
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            for content in json.loads(line).get("content", []):
                data = content.get("attachment", {}).get("data")
                if data:
                    out.append(base64.b64decode(data).decode("utf-8"))
            if len(out) >= limit:
                break
    return out


def test_english_pipeline_runs_on_synthea_notes(refdata: Path) -> None:
    notes = _notes(refdata, 100)
    assert len(notes) == 100
    labels: Counter[str] = Counter()
    sections: Counter[str | None] = Counter()
    for doc in load_pipeline("en").pipe(notes):
        for ent in doc.ents:
            labels[ent.label_] += 1
            sections[ent._.section] += 1
            assert ent._.assertion in {
                "present",
                "negated",
                "possible",
                "historical",
                "family",
                "hypothetical",
            }
    assert labels["CONDITION"] > 0
    assert labels["DRUG"] > 0
    assert sections["hpi"] > 0  # Markdown headings ("# History of Present Illness")


def test_deid_on_synthea_notes_leaves_no_phone_or_id(refdata: Path) -> None:
    deid = Deidentifier(b"synthea")
    for text in _notes(refdata, 30):
        out = deid.deidentify(text, "en", "P")
        assert leaks(out.text) == []
        assert deid.deidentify(out.text, "en", "P").text == out.text
