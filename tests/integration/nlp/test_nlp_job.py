"""The clinical NLP job on real Spark and Delta: silver.note -> gold.note_nlp, silver.note_deid,
silver.note_problem; incremental, idempotent, deletes, no PHI in logs or run records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.settings import Settings
from lakehouse.tables.gold.omop import NOTE_NLP
from lakehouse.tables.ops.gold import OMOP_IDS
from lakehouse.tables.ops.nlp import NLP_PROGRESS
from lakehouse.tables.ops.runs import JOB_RUNS
from lakehouse.tables.silver.documents import NOTE
from lakehouse.tables.silver.note_nlp import NOTE_DEID, NOTE_PROBLEM
from lakehouse.tables.writer import upsert
from models.nlp.deid import leaks
from models.nlp.spark_job import NlpReport, run

ID_CARD = "11010519491231002X"  # the GB 11643 example number (valid check digit)
PHI = ("张伟", ID_CARD, "13812345678", "滨海大道231号", "ZY003167601", "ZHANG Wei", "Li Na")
ZH = (
    "姓名：张伟  身份证号：11010519491231002X\n联系电话：13812345678\n"
    "住址：江西省南昌市东湖区滨海大道231号6栋1907室\n住院号：ZY003167601\n"
    "主诉：胸痛3天。\n现病史：否认高血压史。考虑肺炎可能。母亲患有2型糖尿病。\n"
    "记录时间：2026-02-24 21:27\n"
)
EN = (
    "Patient: ZHANG Wei, male\nAssessment: hypertension. No fever.\n"
    "Plan: Metformin 500 mg po bid. Seen March 5, 2024.\n"
)
EN_UPDATED = "Patient: ZHANG Wei, male\nAssessment: pneumonia. Denies chest pain.\n"
TABLES = (NOTE, NOTE_NLP, NOTE_DEID, NOTE_PROBLEM, NLP_PROGRESS)


def _note(
    note_id: str, lang: str, text: str, *, minute: int, deleted: bool = False
) -> dict[str, Any]:
    return {
        "institution_code": "H0001",
        "source_system": "notes",
        "note_id": note_id,
        "patient_key": "H0001|P0001",
        "patient_id": "P0001",
        "encounter_id": "ZY003167601",
        "note_type": "progress",
        "note_title": text.splitlines()[0],
        "language": lang,
        "note_text": text,
        "char_count": len(text),
        "recorded_at": datetime(2026, 2, 24, 21, 27),
        "recorded_at_source": "2026-02-24 21:27",
        "bronze_table": "bronze.notes_files",
        "source_updated_at": datetime(2026, 2, 25, 8, minute),
        "is_deleted": deleted,
        "silver_run_id": "test",
        "processed_at": datetime(2026, 2, 25, 9, 0),
    }


def _write_notes(spark: SparkSession, rows: list[dict[str, Any]]) -> None:
    upsert(spark, NOTE, spark.createDataFrame(rows, NOTE.schema))


def _entities(spark: SparkSession) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in spark.table(NOTE_NLP.name).collect():
        out.setdefault(r["etl_source_key"].split("|")[-1], []).append(r.asDict())
    return out


@pytest.fixture
def clean(spark: SparkSession) -> Iterator[None]:
    """The job reads and writes fixed table names: start from none, leave none behind."""

    def drop() -> None:
        for spec in TABLES:
            spark.sql(f"DROP TABLE IF EXISTS {spec.name}")
        if spark.catalog.tableExists(OMOP_IDS.name):
            spark.sql(f"DELETE FROM {OMOP_IDS.name} WHERE omop_table IN ('note', 'note_nlp')")

    drop()
    yield
    drop()


def _first_run(spark: SparkSession, settings: Settings) -> dict[str, list[dict[str, Any]]]:
    _write_notes(spark, [_note("zh1", "zh", ZH, minute=0), _note("en1", "en", EN, minute=0)])
    first = run(spark, settings)
    assert first.mode == "snapshot"
    assert first.statuses == {"ok": 2}
    return _entities(spark)


def test_notes_to_note_nlp_deid_and_problems_incrementally(
    spark: SparkSession, settings: Settings, clean: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ents = _first_run(spark, settings)
    assert set(ents) == {"zh1", "en1"}
    texts = {"zh1": ZH, "en1": EN}
    for note, rows in ents.items():
        for r in rows:  # OMOP offset is the start; the text there is the lexical variant
            start = int(r["offset"])
            assert texts[note][start : start + len(r["lexical_variant"])] == r["lexical_variant"]
            assert r["etl_source_table"] == "silver.note"
            assert r["etl_source_key"] == f"H0001|notes|{note}"
            assert r["etl_institution_code"] == "H0001"
            assert r["nlp_system"].startswith("lakehouse-clinical-")
            assert r["note_nlp_concept_id"] == 0  # no vocabulary loaded: unmapped
    by_text = {(n, r["lexical_variant"]): r for n, rows in ents.items() for r in rows}
    assert by_text[("zh1", "高血压")]["term_exists"] == "N"
    assert "negated=true" in by_text[("zh1", "高血压")]["term_modifiers"]
    assert "certainty=possible" in by_text[("zh1", "肺炎")]["term_modifiers"]
    assert "subject=family" in by_text[("zh1", "2型糖尿病")]["term_modifiers"]
    assert by_text[("en1", "hypertension")]["term_exists"] == "Y"
    assert by_text[("en1", "fever")]["term_exists"] == "N"
    note_ids = {r["note_id"] for rows in ents.values() for r in rows}
    assert len(note_ids) == 2  # one OMOP note id per note

    problems = {
        (r["note_id"], r["lexical_variant"]): r["verification_status"]
        for r in spark.table(NOTE_PROBLEM.name).collect()
    }
    assert problems[("zh1", "高血压")] == "refuted"
    assert problems[("zh1", "肺炎")] == "provisional"
    assert ("zh1", "2型糖尿病") not in problems  # the mother's, not the patient's
    assert problems[("en1", "hypertension")] == "confirmed"

    deid = {r["note_id"]: r for r in spark.table(NOTE_DEID.name).collect()}
    for note_id, row in deid.items():
        assert row["nlp_status"] == "ok"
        assert row["phi_replacements"] > 0
        assert not leaks(row["text_deid"])
        for value in PHI:
            assert value not in row["text_deid"], (note_id, value)
    assert "2026-02-24 21:27" not in deid["zh1"]["text_deid"]  # shifted
    assert "高血压" in deid["zh1"]["text_deid"]  # clinical content kept

    # A rerun with nothing new reads nothing and writes nothing.
    again = run(spark, settings)
    assert again.mode == "unchanged"
    assert not again.written

    # One incremental run: an updated note replaces its entities (old ones gone, new ones
    # in); a deleted note removes its entities, problems and de-identified text.
    _write_notes(
        spark,
        [
            _note("en1", "en", EN_UPDATED, minute=5),
            _note("zh1", "zh", ZH, minute=9, deleted=True),
        ],
    )
    upd = run(spark, settings)
    assert upd.mode == "changes"
    assert (upd.notes_read, upd.notes_processed, upd.notes_removed) == (2, 1, 1)
    after = _entities(spark)
    assert set(after) == {"en1"}
    assert {r["lexical_variant"] for r in after["en1"]} == {"pneumonia", "chest pain"}
    pain = next(r for r in after["en1"] if r["lexical_variant"] == "chest pain")
    assert EN_UPDATED[int(pain["offset"]) :].startswith("chest pain")
    assert pain["term_exists"] == "N"
    assert {r["note_id"] for r in spark.table(NOTE_DEID.name).collect()} == {"en1"}
    assert {
        (r["note_id"], r["lexical_variant"]) for r in spark.table(NOTE_PROBLEM.name).collect()
    } == {("en1", "pneumonia"), ("en1", "chest pain")}

    # No PHI in the driver's logs or in the recorded runs.
    logged = caplog.text
    runs = " ".join(
        str(r.asDict()) for r in spark.table(JOB_RUNS.name).where(F.col("job") == "nlp").collect()
    )
    for value in (*PHI, "胸痛", "hypertension"):
        assert value not in logged
        assert value not in runs


@pytest.mark.slow
def test_a_full_rerun_finds_everything_in_place(
    spark: SparkSession, settings: Settings, clean: None
) -> None:
    ents = _first_run(spark, settings)
    full = run(spark, settings, full=True)
    assert isinstance(full, NlpReport)
    assert full.mode == "snapshot"
    assert full.notes_processed == 2
    assert all(n == 0 for n in full.written.values()), full.written
    assert _entities(spark) == ents
