"""Spark columns of the EMPI against their Python rules, and the scoring against Splink."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.empi import features, identity, linkage, model, names
from lakehouse.empi.evaluate import patients_from_truth
from tests.integration.empi.support import crafted, id_card, make_hospital

pytestmark = pytest.mark.spark

CARDS = [
    ("11010519491231002X", date(1949, 12, 31), "2"),
    ("11010519491231002x", None, None),
    ("110105194912310021", date(1949, 12, 31), "2"),
    ("11010519491231002X", date(1950, 1, 1), "2"),
    ("11010519491231002X", date(1949, 12, 31), "1"),
    ("110105194913310028", None, None),
    ("1101051949", None, None),
    (None, None, None),
]


def test_id_card_columns_agree_with_the_python_rules(spark: SparkSession) -> None:
    df = spark.createDataFrame(CARDS, "card string, born date, sex string")
    card = identity.normalized_col(F.col("card"))
    got = df.select(
        card.alias("norm"),
        identity.consistent_col(card, F.col("born"), F.col("sex")).alias("ok"),
        identity.birth_date_col(card).alias("id_born"),
        identity.sex_code_col(card).alias("id_sex"),
    ).collect()
    for (value, born, sex), row in zip(CARDS, got, strict=True):
        norm = identity.normalize(value)
        assert row["norm"] == norm
        assert row["ok"] is identity.is_consistent(value, born, sex), value
        if norm is not None:
            assert row["id_born"] == identity.birth_date(norm)
            assert row["id_sex"] == identity.sex_code(norm)


def test_name_variants_share_the_pinyin_key(spark: SparkSession) -> None:
    rows = [
        {"institution": "T1", "source": "his", "patient_id": str(i), "name": n, "person_id": "x"}
        for i, n in enumerate(["李强霞", "李強霞", "LI QIANGXIA", "Li Qiangxia", " 王·芳 "])
    ]
    got = features.prepare(crafted(spark, rows)).select("name_s", "name_py", "surname_py").collect()
    assert {r["name_py"] for r in got[:4]} == {"LIQIANGXIA"}
    assert {r["surname_py"] for r in got[:4]} == {"LI"}
    assert [r["name_s"] for r in got][:2] == ["李强霞", "李强霞"]
    # The Python reference (the assistant's name search) gives the column's value.
    assert [r["name_s"] for r in got] == [names.name_key(r["name"]) for r in rows]


def test_a_card_fills_a_missing_birth_date_and_sex(spark: SparkSession) -> None:
    card = id_card("440305", date(1980, 2, 29), 13)
    rows = [
        {
            "institution": "T1",
            "source": "fhir",
            "patient_id": "1",
            "name": "王芳",
            "id_card_no": card,
            "sex_code": "0",
            "person_id": "x",
        },
    ]
    got = features.prepare(crafted(spark, rows)).first()
    assert got is not None
    assert (got["birth"], got["sex"], got["id_ok"]) == ("19800229", "1", True)


def test_spark_scoring_equals_splink_predict(spark: SparkSession, tmp_path: Path) -> None:
    """Oracle: the Spark CASE expressions give Splink's own (DuckDB) pairs and weights."""
    truth = make_hospital(tmp_path / "h", patients=40, seed=3)
    feats = features.prepare(patients_from_truth(spark, truth)).localCheckpoint()
    mdl = model.load()
    pairs = linkage.candidate_pairs(feats, feats, max_block_size=10**6)
    ours = {
        (r["record_key_l"], r["record_key_r"]): r["match_weight"]
        for r in linkage.score_pairs(pairs, feats, mdl).collect()
    }
    splink = model.predict_with_splink(feats.select(*features.FEATURE_COLUMNS).toPandas(), mdl)
    theirs = {
        (min(a, b), max(a, b)): w
        for a, b, w in zip(
            splink.record_key_l, splink.record_key_r, splink.match_weight, strict=True
        )
    }
    assert ours.keys() == theirs.keys()
    assert len(ours) > 20
    for pair, weight in ours.items():
        assert weight == pytest.approx(theirs[pair], abs=1e-6)
