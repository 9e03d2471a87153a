"""Vocabulary ids, the code-system registry, local concept ids, unit spellings, headers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.terminology.loaders import _header, _resolve
from lakehouse.terminology.units import spelling_key, spellings
from lakehouse.terminology.vocabularies import (
    DATA,
    LOCAL_ID_BASE,
    check_vocabulary_id,
    local_concept_id,
    local_vocabulary,
    parse_local,
    vocabulary_for,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("system", "institution", "expected"),
    [
        ("http://loinc.org", None, "LOINC"),
        ("LN", None, "LOINC"),
        ("2.16.840.1.113883.6.1", None, "LOINC"),
        ("http://hl7.org/fhir/sid/icd-10", None, "ICD10"),
        ("I10", None, "ICD10"),
        ("2.16.156.10011.2.3.3.11", None, "ICD10"),
        ("http://hl7.org/fhir/sid/icd-10-cm", None, "ICD10CM"),
        ("http://www.whocc.no/atc", None, "ATC"),
        ("http://unitsofmeasure.org", None, "UCUM"),
        ("2.16.156.10011.2.3.3.4", None, "GB2261"),
        ("99LIS", "H0001", "LOCAL:H0001:LAB"),
        ("99LIS", None, None),
        ("A0002-ZD", None, "LOCAL:A0002:DX"),
        ("A0004-YP", None, "LOCAL:A0004:DRUG"),
        ("urn:oid:2.16.156.10011.1.9.2.2", None, "LOCAL:A0001:LAB"),
        ("LOCAL:A0002:LAB", None, "LOCAL:A0002:LAB"),
        (" HTTP://LOINC.ORG ", None, "LOINC"),
        ("http://example.org/unknown", None, None),
        (None, None, None),
    ],
)
def test_vocabulary_for(system: str | None, institution: str | None, expected: str | None) -> None:
    assert vocabulary_for(system, institution=institution) == expected


def test_local_concept_ids_are_deterministic_and_local() -> None:
    a = local_concept_id("LOINC", "2345-7")
    assert a == local_concept_id("LOINC", "2345-7")
    assert a != local_concept_id("LOINC", "2345-8")
    assert a != local_concept_id("LOCAL:A0002:LAB", "2345-7")
    assert LOCAL_ID_BASE <= a < 2**63


def test_vocabulary_ids() -> None:
    assert local_vocabulary("A0002", "LAB") == "LOCAL:A0002:LAB"
    assert parse_local("LOCAL:A0002:DX") == ("A0002", "DX")
    assert parse_local("ICD10") is None
    with pytest.raises(LakehouseError) as exc:
        local_vocabulary("A0002", "XRAY")
    assert exc.value.code is ErrorCode.VOCAB_UNKNOWN
    with pytest.raises(LakehouseError) as exc:
        check_vocabulary_id("SNOMED-ZH")
    assert exc.value.code is ErrorCode.VOCAB_UNKNOWN


@pytest.mark.parametrize(
    ("spelling", "ucum"),
    [("10^9/L", "10*9/L"), ("×10^9/L", "10*9/L"), ("μmol/L", "umol/L"), ("µmol/l", "umol/L"),
     ("MG/DL", "mg/dL"), ("mmol / L", "mmol/L"), ("U/L", "U/L"), ("°C", "Cel"), ("%", "%")],
)  # fmt: skip
def test_unit_spellings(spelling: str, ucum: str) -> None:
    assert spellings()[spelling_key(spelling)] == ucum


def test_header_checks(tmp_path: Path) -> None:
    f = tmp_path / "codes.csv"
    f.write_bytes("\ufeff疾病编码,疾病名称\nE11.900,2型糖尿病\n".encode())
    header = _header(f, sep=",", encoding="utf-8")
    assert _resolve(header, ("code", "name"), (), f.name) == {"code": 0, "name": 1}
    with pytest.raises(LakehouseError) as exc:
        _resolve(header, ("code", "name", "name_en"), (), f.name)
    assert exc.value.code is ErrorCode.VOCAB_FILE_HEADER
    gb = tmp_path / "gb.csv"
    gb.write_bytes("编码,名称\n".encode("gb18030"))
    with pytest.raises(LakehouseError) as exc:
        _header(gb, sep=",", encoding="utf-8")
    assert exc.value.code is ErrorCode.VOCAB_FILE_ENCODING
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(LakehouseError) as exc:
        _header(empty, sep=",", encoding="utf-8")
    assert exc.value.code is ErrorCode.VOCAB_FILE_INVALID


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_demo_vocabulary_covers_the_synthetic_hospital() -> None:
    """Every code clinical.json uses is in the demo files (the files were written from it;
    nothing reads the synthetic truth at run time)."""
    clinical = json.loads((REPO / "lakehouse/synthetic/data/clinical.json").read_text("utf-8"))
    icd = {r["code"] for r in _rows("icd10_demo.csv")}
    loinc = {r["LOINC_NUM"] for r in _rows("loinc_demo.csv")}
    atc = {r["code"] for r in _rows("atc_demo.csv")}
    conds = [*clinical["conditions"].values(), *clinical["outcomes"].values(), clinical["checkup"]]
    assert {c["icd10"] for c in conds} <= icd
    assert {lab["loinc"] for lab in clinical["labs"].values()} <= loinc
    assert {d["atc"] for d in clinical["drugs"].values()} <= atc
    local = {
        (r["institution"], r["local_system"], r["local_code"]): r
        for r in _rows("local_code_map_demo.csv")
    }
    for site in ("A0002", "A0004"):
        for c in conds:
            assert local[(site, "DX", c["csv_code"])]["target_code"] == c["icd10"]
        for lab in clinical["labs"].values():
            assert local[(site, "LAB", lab["csv_code"])]["target_code"] == lab["loinc"]
        for d in clinical["drugs"].values():
            assert local[(site, "DRUG", d["csv_code"])]["target_code"] == d["atc"]
    for site in ("H0001", "A0001", "A0003"):
        for key, lab in clinical["labs"].items():
            assert local[(site, "LAB", key)]["target_code"] == lab["loinc"]
    for key, d in clinical["drugs"].items():
        assert local[("H0001", "DRUG", key)]["target_code"] == d["atc"]


def test_unit_factors_agree_with_the_synthetic_hospital() -> None:
    """mg/dL conversions invert clinical.json's alt_factor within 0.1%."""
    clinical = json.loads((REPO / "lakehouse/synthetic/data/clinical.json").read_text("utf-8"))
    conv = {
        (r["analyte"], r["from_unit"]): float(r["factor"]) for r in _rows("unit_conversion.csv")
    }
    for lab in clinical["labs"].values():
        assert (lab["loinc"], lab["ucum"]) in conv, lab["loinc"]
        if "alt_unit" in lab:
            factor = conv[(lab["loinc"], lab["alt_unit"])]
            assert factor * float(lab["alt_factor"]) == pytest.approx(1.0, rel=1e-3)
