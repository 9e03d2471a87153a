"""NOTE_NLP rows in Arrow batches, as the Spark job's mapInArrow will produce them."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from models.nlp.note_nlp import NOTE_NLP_SCHEMA, annotate_batches

WHEN = datetime(2026, 6, 30, 12, 0)


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        ("zh", "否认高血压史。", ("高血压", "N", "present", "refuted", "I10.x00")),
        ("zh", "既往肺炎病史，已治愈。", ("肺炎", "Y", "past", "confirmed", "J18.900")),
        ("zh", "考虑贫血可能。", ("贫血", "N", "present", "provisional", "D64.900")),
        ("zh", "母亲患有2型糖尿病。", ("2型糖尿病", "N", "present", None, "E11.900")),
        (
            "en",
            "Assessment: hypertension.",
            ("hypertension", "Y", "present", "confirmed", "I10.x00"),
        ),
        ("en", "Metformin 500 mg po bid.", ("Metformin", "Y", "present", None, "A10BA02")),
    ],
)
def test_rows(lang: str, text: str, expected: tuple[object, ...]) -> None:
    batch = pa.RecordBatch.from_pydict({"note_id": ["n1"], "note_text": [text], "language": [lang]})
    (out,) = list(annotate_batches([batch], when=WHEN))
    assert out.schema == NOTE_NLP_SCHEMA
    (row,) = out.to_pylist()
    got = (
        row["lexical_variant"],
        row["term_exists"],
        row["term_temporal"],
        row["verification_status"],
        row["concept_code"],
    )
    assert got == expected
    assert text[int(row["offset"]) : row["end_char"]] == row["lexical_variant"]
    assert row["note_id"] == "n1"
    assert row["nlp_datetime"] == WHEN


def test_batches_keep_their_shape() -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "note_id": ["a", "b", "c", "d"],
            "note_text": ["无胸痛。", None, "No fever.", "Pas de fièvre."],
            "language": ["zh", "zh", "en", "fr"],
        }
    )
    empty = pa.RecordBatch.from_pydict(
        {"note_id": [], "note_text": [], "language": []},
        schema=pa.schema(
            [("note_id", pa.string()), ("note_text", pa.string()), ("language", pa.string())]
        ),
    )
    outs = list(annotate_batches([batch, empty], when=WHEN))
    assert [o.num_rows for o in outs] == [2, 0]
    assert outs[0].column("note_id").to_pylist() == ["a", "c"]
    assert all(o.schema == NOTE_NLP_SCHEMA for o in outs)
