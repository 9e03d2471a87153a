"""Unmapped codes of a silver run reach the review queue together, in one MERGE."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakehouse.silver.standardize import queue_unmapped, unmapped_codes, unmapped_condition
from lakehouse.terminology.store import ensure_vocab_tables

QUEUE = "vocab.review_queue"


def _diagnoses(spark: Any, inst: str) -> Any:
    vocab = f"LOCAL:{inst}:DX"
    at = datetime(2026, 3, 1, 8)
    return spark.createDataFrame(
        [
            (inst, "XD01", vocab, "甲病", at, at, "unmapped"),
            (inst, "XD01", vocab, "甲病", None, datetime(2026, 3, 5, 8), "unmapped"),
            (inst, "XD02", vocab, "乙病", at, at, "standard"),  # mapped: not queued
            (inst, None, vocab, "无编码", at, at, "unmapped"),  # no code: nothing to review
        ],
        "institution_code string, source_code string, source_vocabulary string, "
        "source_name string, diagnosed_at timestamp, source_updated_at timestamp, "
        "map_status string",
    )


def _labs(spark: Any, inst: str) -> Any:
    at = datetime(2026, 3, 2, 8)
    return spark.createDataFrame(
        [
            (inst, "XD01", f"LOCAL:{inst}:DX", "甲病", at, at, "unmapped"),
            (inst, "XL01", f"LOCAL:{inst}:LAB", "丙项", at, at, "unmapped"),
        ],
        "institution_code string, test_source_code string, test_source_vocabulary string, "
        "test_source_name string, collected_at timestamp, source_updated_at timestamp, "
        "test_map_status string",
    )


def test_codes_of_several_tables_are_queued_in_one_merge(spark: Any, unique: str) -> None:
    inst = f"Q{unique}".upper()
    dx, lab = _diagnoses(spark, inst), _labs(spark, inst)
    assert unmapped_codes("silver.patient", dx) is None
    assert unmapped_condition("silver.patient") is None
    condition = unmapped_condition("silver.diagnosis")
    assert condition is not None
    assert dx.where(condition).count() == 2
    codes = [unmapped_codes("silver.diagnosis", dx), unmapped_codes("silver.lab_result", lab)]
    assert all(c is not None for c in codes)
    kept = [c for c in codes if c is not None]
    assert sorted(r["code"] for r in kept[0].collect()) == ["XD01", "XD01"]

    ensure_vocab_tables(spark)
    assert queue_unmapped(spark, []) is None  # nothing kept: no commit
    before = DeltaTable.forName(spark, QUEUE).history(1).first()
    assert before is not None
    report = queue_unmapped(spark, kept)
    assert report is not None
    assert (report.codes, report.inserted) == (2, 2)
    after = DeltaTable.forName(spark, QUEUE).history(1).first()
    assert after is not None
    assert after["version"] == before["version"] + 1

    got = {
        (r["source_vocabulary_id"], r["source_code"]): r
        for r in spark.table(QUEUE).where(F.col("institution_code") == inst).collect()
    }
    assert set(got) == {(f"LOCAL:{inst}:DX", "XD01"), (f"LOCAL:{inst}:LAB", "XL01")}
    xd01 = got[(f"LOCAL:{inst}:DX", "XD01")]
    # its rows of both tables, seen from the earliest event to the latest arrival
    assert xd01["occurrences"] == 3
    assert xd01["first_seen_at"] == datetime(2026, 3, 1, 8)
    assert xd01["last_seen_at"] == datetime(2026, 3, 5, 8)
    assert xd01["status"] == "open"
