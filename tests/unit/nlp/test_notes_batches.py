"""The NLP job's mapInArrow body: statuses, offsets, shifts, determinism (no JVM)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import models.nlp.notes as notes_mod
from lakehouse.governance.deid.person_keys import derive
from models.nlp.notes import RESULT_SCHEMA, process_batches, process_note

KEY = b"test-key"
TEXT = "姓名：张伟\n记录时间：2026-02-24\n否认高血压史。"


def _batch(
    rows: list[tuple[str, str | None, str | None, str | None, int | None]],
) -> pa.RecordBatch:
    cols = list(zip(*rows, strict=True))
    return pa.RecordBatch.from_pydict(
        {
            "institution_code": ["H0001"] * len(rows),
            "source_system": ["notes"] * len(rows),
            "note_id": list(cols[0]),
            "patient_key": list(cols[1]),
            "language": list(cols[2]),
            "note_text": list(cols[3]),
            "shift_days": pa.array(list(cols[4]), pa.int32()),
        }
    )


def test_statuses_and_entities() -> None:
    batch = _batch(
        [
            ("a", "H0001|P1", "zh", TEXT, None),
            ("b", "H0001|P1", "zh", "   ", None),
            ("c", "H0001|P1", "fr", "Pas de fièvre.", None),
            ("d", None, "en", "No fever.", None),
        ]
    )
    (out,) = list(process_batches(KEY, 365)([batch]))
    assert out.schema == RESULT_SCHEMA
    rows = {r["note_id"]: r for r in out.to_pylist()}
    assert [rows[k]["nlp_status"] for k in "abcd"] == ["ok", "empty", "unsupported_language", "ok"]
    assert rows["c"]["error_code"] == "LH-NLP-001"
    assert rows["c"]["text_deid"] is None
    (ent,) = rows["a"]["entities"]
    assert TEXT[ent["start_char"] : ent["end_char"]] == ent["lexical_variant"] == "高血压"
    assert (ent["verification_status"], ent["vocabulary_id"]) == ("refuted", "ICD-10")
    assert "张伟" not in rows["a"]["text_deid"]
    assert rows["a"]["phi_replacements"] == 2


def test_dates_move_by_the_views_shift_of_the_person() -> None:
    stored = process_note(TEXT, "zh", "H0001|P1", 10, KEY)
    assert "2026-03-06" in stored["text_deid"]
    derived = derive(KEY, "H0001|P1", 365).shift_days
    (out,) = list(process_batches(KEY, 365)([_batch([("a", "H0001|P1", "zh", TEXT, None)])]))
    assert (
        out.to_pylist()[0]["text_deid"]
        == process_note(TEXT, "zh", "H0001|P1", derived, KEY)["text_deid"]
    )


def test_a_failing_note_is_reported_and_the_batch_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object, **__: object) -> list[object]:
        raise RuntimeError("broken pipeline")

    monkeypatch.setattr(notes_mod, "annotate", boom)
    batch = _batch([("a", "H0001|P1", "zh", TEXT, 5), ("b", "H0001|P1", "en", "No fever.", 5)])
    (out,) = list(process_batches(KEY, 365)([batch]))
    for row in out.to_pylist():
        assert (row["nlp_status"], row["error_code"], row["text_deid"]) == (
            "failed",
            "LH-NLP-003",
            None,
        )


def test_same_note_same_output_whatever_the_batch() -> None:
    alone = process_note(TEXT, "zh", "H0001|P1", 7, KEY)
    other = "姓名：李明\n记录时间：2026-03-06\n"
    (out,) = list(
        process_batches(KEY, 365)(
            [_batch([("x", "H0001|P2", "zh", other, 7), ("a", "H0001|P1", "zh", TEXT, 7)])]
        )
    )
    assert out.to_pylist()[1]["text_deid"] == alone["text_deid"]
