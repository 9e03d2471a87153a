"""map_codes, normalize_units, to_ucum, sex_gb2261 and vocabulary_of on the demo vocabulary."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pyspark.sql import functions as F

from lakehouse.terminology import (
    map_codes,
    normalize_units,
    sex_gb2261,
    to_ucum,
    vocabulary_for,
    vocabulary_of,
)
from lakehouse.terminology.demo import load_demo
from lakehouse.terminology.vocabularies import local_concept_id, local_concept_id_col


def test_demo_load_is_idempotent(spark: Any, demo_vocab: Any) -> None:
    again = load_demo(spark)
    assert all(r.skipped for r in again.reports)
    assert len(again.reports) == 1
    assert again.unit_conversions == 0
    n = spark.table("vocab.concept").where(F.col("vocabulary_id") == "LOINC").count()
    assert n >= 10


CASES = [
    # (vocabulary, code, expected status, expected standard code)
    ("ICD10", "E11.900", "standard", "E11.900"),
    ("ICD10", " I10.x00 ", "standard", "I10.x00"),
    ("LOCAL:A0002:DX", "ZD-0301", "mapped", "E11.900"),
    ("LOCAL:A0002:LAB", "JY1001", "mapped", "2345-7"),
    ("LOCAL:A0002:DRUG", "YP0101", "mapped", "A10BA02"),
    ("LOCAL:H0001:LAB", "GLU", "mapped", "2345-7"),
    ("LOCAL:H0001:DRUG", "D001", "mapped", "A10BA02"),
    ("LOCAL:A0001:LAB", "CREA", "mapped", "2160-0"),
    ("LOINC", "2345-7", "standard", "2345-7"),
    ("ATC", "C10AA05", "standard", "C10AA05"),
    ("GB2261", "1", "standard", "1"),
    ("LOCAL:A0002:LAB", "JY9999", "unmapped", None),
    ("ICD10", "X99.999", "unmapped", None),
    ("NOPE", "E11.900", "unmapped", None),
    ("ICD10", None, "unmapped", None),
]


def test_map_codes_statuses_and_no_fan_out(spark: Any, demo_vocab: Any) -> None:
    rows = [(i, v, c) for i, (v, c, _, _) in enumerate(CASES)]
    rows += rows  # duplicates in the input stay duplicates
    df = spark.createDataFrame(rows, "i int, vocab string, code string")
    out = map_codes(spark, df, code=F.col("code"), vocabulary=F.col("vocab"), prefix="dx_")
    assert out.count() == len(rows)
    assert set(out.columns) >= {
        "i", "dx_concept_id", "dx_standard_code", "dx_standard_vocabulary",
        "dx_standard_name", "dx_map_status", "dx_source_concept_id",
    }  # fmt: skip
    got = {r["i"]: r for r in out.collect()}
    for i, (vocab, code, status, std) in enumerate(CASES):
        assert got[i]["dx_map_status"] == status, (vocab, code)
        assert got[i]["dx_standard_code"] == std, (vocab, code)
        if std is not None:
            assert got[i]["dx_concept_id"] == local_concept_id(
                got[i]["dx_standard_vocabulary"], std
            )
    local = got[2]
    assert local["dx_source_concept_id"] == local_concept_id("LOCAL:A0002:DX", "ZD-0301")
    assert got[0]["dx_standard_name"] == "Type 2 diabetes mellitus"


def test_local_concept_id_matches_in_spark(spark: Any) -> None:
    pairs = [("LOINC", "2345-7"), ("LOCAL:A0002:LAB", "JY1001"), ("ICD10", "I10.x00")]
    df = spark.createDataFrame(pairs, "v string, c string")
    got = [r[0] for r in df.select(local_concept_id_col(F.col("v"), F.col("c"))).collect()]
    assert got == [local_concept_id(v, c) for v, c in pairs]
    assert all(x >= 2_000_000_000 for x in got)


UNITS = [
    # analyte, value, unit, value_std, unit_std, status
    ("2345-7", "90", "mg/dL", 5.0, "mmol/L", "converted"),
    ("2345-7", "5.6", "mmol/l", 5.6, "mmol/L", "canonical"),
    ("2345-7", "5.6", " MMOL / L ", 5.6, "mmol/L", "canonical"),
    ("6690-2", "6.3", "10^9/L", 6.3, "10*9/L", "canonical"),
    ("6690-2", "6.3", "x10^9/L", 6.3, "10*9/L", "canonical"),
    ("6690-2", "6.3", "10*3/uL", 6.3, "10*9/L", "converted"),
    ("2160-0", "1", "mg/dl", 88.4, "umol/L", "converted"),
    ("2160-0", "80", "μmol/L", 80.0, "umol/L", "canonical"),
    ("2160-0", "80", "umol/L", 80.0, "umol/L", "canonical"),
    ("2093-3", "154.68", "mg/dL", 4.0, "mmol/L", "converted"),
    ("13457-7", "100", "mg/dL", 2.585984, "mmol/L", "converted"),
    ("718-7", "13.8", "g/dL", 138.0, "g/L", "converted"),
    ("4548-4", "6.1", "%", 6.1, "%", "canonical"),
    ("1742-6", "22", "U/L", 22.0, "U/L", "canonical"),
    ("8310-5", "98.6", "°F", 37.0, "Cel", "converted"),
    ("2345-7", None, "mmol/L", None, "mmol/L", "no_value"),
    ("2345-7", "<0.5", "mmol/L", None, "mmol/L", "no_value"),
    ("2345-7", "5", "furlong", None, None, "unknown_unit"),
    ("2345-7", "5", "g/L", None, "g/L", "unknown_unit"),
    ("99999-9", "5", "mg/L", 5.0, "mg/L", "canonical"),
]


def test_normalize_units(spark: Any, demo_vocab: Any) -> None:
    rows = [(i, a, v, u) for i, (a, v, u, *_) in enumerate(UNITS)]
    df = spark.createDataFrame(rows, "i int, analyte string, value string, unit string")
    out = normalize_units(
        spark, df, analyte=F.col("analyte"), value=F.col("value"), unit=F.col("unit"), prefix="lab_"
    )
    assert out.count() == len(rows)
    got = {r["i"]: r for r in out.collect()}
    for i, (a, v, u, value_std, unit_std, status) in enumerate(UNITS):
        r = got[i]
        assert r["lab_unit_status"] == status, (a, v, u)
        assert r["lab_unit_std"] == unit_std, (a, v, u)
        if value_std is None:
            assert r["lab_value_std"] is None
        else:
            assert r["lab_value_std"] == pytest.approx(value_std, abs=1e-6), (a, v, u)


def test_to_ucum_sex_and_vocabulary_of(spark: Any) -> None:
    df = spark.createDataFrame(
        [("10^9/L", "M", "http://loinc.org", None),
         ("μmol/L", "女", "99LIS", "H0001"),
         ("mg/dl", "female", "A0002-JY", None),
         ("??", "U", "urn:oid:2.16.156.10011.1.9.2.2", None),
         (None, None, "2.16.156.10011.2.3.3.11", None),
         ("%", "x", "unknown-system", None)],
        "unit string, sex string, system string, inst string",
    )  # fmt: skip
    out = df.select(
        to_ucum(F.col("unit")).alias("u"),
        sex_gb2261(F.col("sex")).alias("s"),
        vocabulary_of(F.col("system"), F.col("inst")).alias("v"),
        "system",
        "inst",
    ).collect()
    assert [r["u"] for r in out] == ["10*9/L", "umol/L", "mg/dL", None, None, "%"]
    assert [r["s"] for r in out] == ["1", "2", "2", "0", "0", None]
    assert [r["v"] for r in out] == [
        vocabulary_for(r["system"], institution=r["inst"]) for r in out
    ]
    assert [r["v"] for r in out] == [
        "LOINC", "LOCAL:H0001:LAB", "LOCAL:A0002:LAB", "LOCAL:A0001:LAB", "ICD10", None,
    ]  # fmt: skip


def test_on_date_before_any_edition_is_still_valid(spark: Any, demo_vocab: Any) -> None:
    df = spark.createDataFrame(
        [("ICD10", "E11.900", date(1999, 5, 1))], "v string, c string, d date"
    )
    out = map_codes(
        spark, df, code=F.col("c"), vocabulary=F.col("v"), on_date=F.col("d"), prefix=""
    ).first()
    assert out is not None
    assert out["map_status"] == "standard"
