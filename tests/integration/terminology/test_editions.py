"""Loaders, editions superseded by validity dates, bad files, Athena bundles, ICD-10-CM."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.terminology import map_codes
from lakehouse.terminology.loaders import (
    find_icd10cm_file,
    load_athena,
    load_code_list,
    load_icd10cm,
    load_local_map,
    load_unit_conversions,
)
from lakehouse.terminology.vocabularies import local_concept_id


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _status(spark: Any, vocab: str, codes: list[str], day: date) -> dict[str, tuple[str, str]]:
    df = spark.createDataFrame([(vocab, c, day) for c in codes], "v string, c string, d date")
    out = map_codes(
        spark, df, code=F.col("c"), vocabulary=F.col("v"), on_date=F.col("d"), prefix=""
    )
    return {r["c"]: (r["map_status"], r["standard_name"]) for r in out.collect()}


def test_new_edition_supersedes_by_validity_dates(spark: Any, tmp_path: Path, unique: str) -> None:
    vocab = f"T{unique}"
    e1 = _write(tmp_path / "e1.csv", "code,name,name_en\nA01,甲,alpha\nB01,乙,beta\n")
    e2 = _write(tmp_path / "e2.csv", "code,name,name_en\nA01,甲,alpha two\nC01,丙,gamma\n")
    r1 = load_code_list(spark, e1, vocabulary_id=vocab, edition="v1", valid_from=date(2020, 1, 1))
    assert r1.counts["concept_inserted"] == 2
    again = load_code_list(
        spark, e1, vocabulary_id=vocab, edition="v1", valid_from=date(2020, 1, 1)
    )
    assert again.skipped
    r2 = load_code_list(spark, e2, vocabulary_id=vocab, edition="v2", valid_from=date(2024, 1, 1))
    assert r2.counts["concept_inserted"] == 2  # A01 changed, C01 new
    assert r2.counts["concept_closed"] == 2  # A01 (U), B01 (D)

    old = _status(spark, vocab, ["A01", "B01", "C01"], date(2021, 6, 1))
    assert old == {
        "A01": ("standard", "alpha"),
        "B01": ("standard", "beta"),
        "C01": ("invalid", None),
    }
    new = _status(spark, vocab, ["A01", "B01", "C01"], date(2025, 6, 1))
    assert new["A01"] == ("standard", "alpha two")
    assert new["B01"][0] == "invalid"
    assert new["C01"] == ("standard", "gamma")

    history = spark.table("vocab.concept").where(F.col("vocabulary_id") == vocab)
    assert history.count() == 4  # nothing deleted: A01 twice, B01, C01
    closed = {
        (r["concept_code"], r["edition"]): (r["valid_end_date"], r["invalid_reason"])
        for r in history.collect()
    }
    assert closed[("A01", "v1")] == (date(2023, 12, 31), "U")
    assert closed[("B01", "v1")] == (date(2023, 12, 31), "D")
    assert closed[("A01", "v2")] == (date(2099, 12, 31), None)

    with pytest.raises(LakehouseError) as exc:  # an older edition after a newer one
        load_code_list(spark, e1, vocabulary_id=vocab, edition="v0", valid_from=date(2019, 1, 1))
    assert exc.value.code is ErrorCode.VOCAB_EDITION_OUT_OF_ORDER
    with pytest.raises(LakehouseError) as exc:  # the same edition from another file
        load_code_list(spark, e2, vocabulary_id=vocab, edition="v1", valid_from=date(2020, 1, 1))
    assert exc.value.code is ErrorCode.VOCAB_EDITION_CONFLICT
    ed = spark.table("vocab.vocabulary").where(F.col("vocabulary_id") == vocab)
    assert sorted(r["edition"] for r in ed.collect()) == ["v1", "v2"]


@pytest.mark.parametrize(
    ("content", "encoding", "code"),
    [
        ("编码,描述\nE11.900,2型糖尿病\n", "utf-8", ErrorCode.VOCAB_FILE_HEADER),
        (
            "code,name\nE11.900,二型糖尿病\nE12.000,营养不良糖尿病\n",
            "gb18030",
            ErrorCode.VOCAB_FILE_ENCODING,
        ),
        (
            "code,name\nE11.900,2型糖尿病\nE11.900,糖尿病II型\n",
            "utf-8",
            ErrorCode.VOCAB_DUPLICATE_CODES,
        ),
        ("code,name\n,无编码\nE11.900,2型糖尿病\n", "utf-8", ErrorCode.VOCAB_BAD_ROWS),
        ("code,name\n", "utf-8", ErrorCode.VOCAB_FILE_INVALID),
    ],
)
def test_bad_files_load_nothing(
    spark: Any, tmp_path: Path, unique: str, content: str, encoding: str, code: ErrorCode
) -> None:
    vocab = f"BAD{unique}"
    f = _write(tmp_path / "bad.csv", content, encoding)
    with pytest.raises(LakehouseError) as exc:
        load_code_list(spark, f, vocabulary_id=vocab, edition="x")
    assert exc.value.code is code
    assert spark.table("vocab.concept").where(F.col("vocabulary_id") == vocab).count() == 0
    assert spark.table("vocab.vocabulary").where(F.col("vocabulary_id") == vocab).count() == 0


def test_gb18030_file_loads_with_its_encoding(spark: Any, tmp_path: Path, unique: str) -> None:
    vocab = f"GB{unique}"
    f = _write(tmp_path / "gb.csv", "疾病编码,疾病名称\nE11.900,2型糖尿病\n", "gb18030")
    load_code_list(spark, f, vocabulary_id=vocab, edition="x", encoding="gb18030")
    row = spark.table("vocab.concept").where(F.col("vocabulary_id") == vocab).first()
    assert row is not None
    assert row["concept_name_zh"] == "2型糖尿病"


def test_local_map_edition_changes_a_target(
    spark: Any, tmp_path: Path, unique: str, demo_vocab: Any
) -> None:
    inst = f"S{unique}".upper()
    head = "institution,local_system,local_code,local_name,target_vocabulary,target_code\n"
    m1 = _write(
        tmp_path / "m1.csv",
        head + f"{inst},LAB,X1,血糖,LOINC,2345-7\n{inst},DX,Z1,高血压,ICD10,I10.x00\n",
    )
    m2 = _write(
        tmp_path / "m2.csv",
        head + f"{inst},LAB,X1,血糖,LOINC,2345-7\n{inst},DX,Z1,高血压,ICD10,I15.900\n",
    )
    load_local_map(spark, m1, edition="m1", valid_from=date(2020, 1, 1))
    load_local_map(spark, m2, edition="m2", valid_from=date(2024, 1, 1))
    df = spark.createDataFrame(
        [(f"LOCAL:{inst}:DX", "Z1", date(2022, 1, 1)), (f"LOCAL:{inst}:DX", "Z1", date(2025, 1, 1)),
         (f"LOCAL:{inst}:LAB", "X1", date(2025, 1, 1))],
        "v string, c string, d date",
    )  # fmt: skip
    out = map_codes(
        spark, df, code=F.col("c"), vocabulary=F.col("v"), on_date=F.col("d"), prefix=""
    )
    got = [(r["map_status"], r["standard_code"]) for r in out.orderBy("d", "v").collect()]
    assert got == [("mapped", "I10.x00"), ("mapped", "I15.900"), ("mapped", "2345-7")]
    bad = _write(tmp_path / "m3.csv", head + f"{inst},LAB,X2,某项,LOINC,0000-0\n")
    with pytest.raises(LakehouseError) as exc:
        load_local_map(spark, bad, edition="m3", valid_from=date(2025, 1, 1))
    assert exc.value.code is ErrorCode.VOCAB_TARGET_MISSING


def test_athena_bundle_real_ids_and_maps_to(
    spark: Any, tmp_path: Path, unique: str, demo_vocab: Any
) -> None:
    src, std = f"SRC{unique}", f"STD{unique}"
    base = 900_000_000 + int(unique[:6], 16)
    folder = tmp_path / "athena"
    folder.mkdir()
    cols = (
        "\t".join(
            ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
             "standard_concept", "concept_code", "valid_start_date", "valid_end_date",
             "invalid_reason"]
        )
        + "\n"
    )  # fmt: skip
    always = "19700101\t20991231\t"
    _write(
        folder / "CONCEPT.csv",
        cols
        + f'{base}\tType 2 diabetes "T2"\tCondition\t{std}\tFinding\tS\t44054006\t{always}\n'
        + f"{base + 1}\tT2DM source\tCondition\t{src}\tICD code\t\tE11.9\t19700101\t20991231\t\n"
        + f"{base + 2}\tOld code\tCondition\t{src}\tICD code\t\tE11.8\t19700101\t20001231\tD\n",
    )
    _write(
        folder / "CONCEPT_RELATIONSHIP.csv",
        "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
        f"{base + 1}\t{base}\tMaps to\t19700101\t20991231\t\n",
    )
    _write(
        folder / "CONCEPT_SYNONYM.csv",
        f"concept_id\tconcept_synonym_name\tlanguage_concept_id\n{base}\t2型糖尿病\t4182948\n",
    )
    load_athena(spark, folder, edition="a1")
    got = _status(spark, src, ["E11.9", "E11.8"], date(2024, 1, 1))
    assert got["E11.9"] == ("mapped", 'Type 2 diabetes "T2"')
    assert got["E11.8"][0] == "invalid"
    row = spark.table("vocab.concept").where(F.col("concept_id") == base).first()
    assert row is not None
    assert row["concept_name_zh"] == "2型糖尿病"

    clash = tmp_path / "clash"
    clash.mkdir()
    taken = local_concept_id("ICD10", "E11.900")  # a demo concept's id, another code
    _write(
        clash / "CONCEPT.csv", cols + f"{taken}\tX\tCondition\tZZ{unique}\tX\tS\tE99\t{always}\n"
    )
    with pytest.raises(LakehouseError) as exc:
        load_athena(spark, clash, edition="c1")
    assert exc.value.code is ErrorCode.VOCAB_CONCEPT_ID_COLLISION


def test_unit_conversion_table_is_checked(spark: Any, tmp_path: Path) -> None:
    head = "analyte,from_unit,to_unit,factor,offset\n"
    for body in (
        "2345-7,mg/dL,mmol/L,0.0555,0\n",  # no canonical-unit row
        "2345-7,mmol/L,mmol/L,1,0\n2345-7,mg/dL,mmol/L,0,0\n",  # zero factor
        "2345-7,mmol/L,mmol/L,1,0\n2345-7,furlong,mmol/L,2,0\n",  # not UCUM
        "2345-7,mmol/L,mmol/L,1,0\n2345-7,mg/dL,g/L,2,0\n",  # two targets
    ):
        f = _write(tmp_path / "u.csv", head + body)
        with pytest.raises(LakehouseError) as exc:
            load_unit_conversions(spark, f, edition="bad")
        assert exc.value.code is ErrorCode.UNIT_CONVERSION_INVALID


@pytest.mark.refdata
def test_icd10cm_from_the_real_cms_file(spark: Any, refdata: Path) -> None:
    file = find_icd10cm_file(refdata / "icd10cm")
    with gzip.open(file, "rt", encoding="utf-8") as fh:
        expected = sum(1 for _ in fh) - 1
    report = load_icd10cm(spark, refdata / "icd10cm")
    loaded = spark.table("vocab.concept").where(F.col("vocabulary_id") == "ICD10CM")
    assert loaded.select("concept_code").distinct().count() == expected
    if not report.skipped:
        assert report.counts["concept_inserted"] == expected
    got = _status(spark, "ICD10CM", ["E11.9", "A00.0", "E119"], date(2024, 1, 1))
    assert got["E11.9"][0] == "standard"
    assert got["A00.0"][0] == "standard"
    assert got["E119"][0] == "unmapped"
    parent = (
        spark.table("vocab.concept_ancestor")
        .where(F.col("descendant_concept_id") == local_concept_id("ICD10CM", "E11.9"))
        .where(F.col("ancestor_concept_id") == local_concept_id("ICD10CM", "E11"))
        .count()
    )
    assert parent == 1
