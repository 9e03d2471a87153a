"""Every injected defect is recorded, and is where the truth says (dirty hospital)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow.parquet as pq
import pydicom
from lxml import etree

from lakehouse.synthetic import DefectCode, DirtRates, HospitalReport
from tests.unit.synthetic.readers import hl7_messages


def truth(report: HospitalReport, entity: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(
        report.out / "truth" / f"{entity}.parquet"
    ).to_pylist()
    return rows


def defects(report: HospitalReport, code: DefectCode) -> list[dict[str, Any]]:
    return [d for d in truth(report, "defects") if d["defect_code"] == code.value]


def test_every_defect_kind_occurs(dirty_hospital: HospitalReport) -> None:
    kinds = Counter(d["defect_code"] for d in truth(dirty_hospital, "defects"))
    assert set(kinds) == {c.value for c in DefectCode}


def test_clean_rates_inject_nothing(clean_hospital: HospitalReport) -> None:
    assert truth(clean_hospital, "defects") == []
    assert all(v == 0 for v in DirtRates.clean().as_dict().values())


def test_duplicates_repeat_the_original_bytes(dirty_hospital: HospitalReport) -> None:
    out = dirty_hospital.out
    for d in defects(dirty_hospital, DefectCode.DUPLICATE_FILE):
        original = d["detail"].removeprefix("duplicate of ")
        assert (out / d["file"]).read_bytes() == (out / original).read_bytes()
        assert d["file"] != original


def test_truncated_files_are_short(dirty_hospital: HospitalReport) -> None:
    manifest = json.loads((dirty_hospital.out / "manifest.json").read_text("utf-8"))
    found = defects(dirty_hospital, DefectCode.TRUNCATED_FILE)
    assert found
    for d in found:
        kept, total = (
            int(x) for x in d["detail"].removeprefix("kept ").split(" bytes")[0].split(" of ")
        )
        assert kept < total
        assert manifest["files"][d["file"]]["bytes"] == kept
        if d["source"] == "emr":
            try:
                etree.fromstring((dirty_hospital.out / d["file"]).read_bytes())
                raise AssertionError("a truncated CDA document must not parse")
            except etree.XMLSyntaxError:
                pass


def _truncated(report: HospitalReport) -> set[str]:
    return {d["file"] for d in defects(report, DefectCode.TRUNCATED_FILE)}


def test_wrong_encoding_is_gb18030_declared_utf8(dirty_hospital: HospitalReport) -> None:
    found = defects(dirty_hospital, DefectCode.WRONG_ENCODING)
    assert found
    for d in found:
        raw = (dirty_hospital.out / d["file"]).read_bytes()
        assert b"UTF-8" in raw[:300] or b"UNICODE UTF-8" in raw
        try:
            raw.decode("utf-8")
            decoded_as_utf8 = True
        except UnicodeDecodeError:
            decoded_as_utf8 = False
        assert not decoded_as_utf8
        if d["file"] not in _truncated(dirty_hospital):
            assert any("\u4e00" <= ch <= "\u9fff" for ch in raw.decode("gb18030"))


def test_hl7_record_level_defects_are_in_their_message(dirty_hospital: HospitalReport) -> None:
    out = dirty_hospital.out
    enc = {d["file"] for d in defects(dirty_hospital, DefectCode.WRONG_ENCODING)}
    malformed = {d["record_id"] for d in defects(dirty_hospital, DefectCode.MALFORMED_MESSAGE)}
    checked = 0
    for code in (DefectCode.MISSING_FIELD, DefectCode.MALFORMED_MESSAGE):
        for d in [x for x in defects(dirty_hospital, code) if x["source"] == "lis"]:
            if d["file"] in _truncated(dirty_hospital):
                continue
            if code is DefectCode.MISSING_FIELD and d["record_id"] in malformed:
                continue  # the same message also lost its MSH or its second half
            checked += 1
            encoding = "gb18030" if d["file"] in enc else "utf-8"
            messages = hl7_messages(out / d["file"], encoding)
            mine = [m for m in messages if d["record_id"] in m]
            if code is DefectCode.MISSING_FIELD:
                assert any("\rPID|1||||" in m for m in mine)
            elif d["detail"] == "MSH segment missing":
                assert not mine  # the control id lived in the lost MSH
            else:
                assert len(mine) == 1
                assert not mine[0].split("\r")[-1].startswith("ZPI")  # the tail is gone
    assert checked


def test_unit_variants_and_out_of_range_values_in_truth_labs(
    dirty_hospital: HospitalReport,
) -> None:
    labs = {r["lab_id"]: r for r in truth(dirty_hospital, "labs")}
    variants = [d for d in defects(dirty_hospital, DefectCode.UNIT_VARIANT) if d["source"] == "lis"]
    assert variants
    for d in variants:
        lab = labs[d["record_id"]]
        assert lab["reported_unit"] == "mg/dL" != lab["unit"]
    for d in defects(dirty_hospital, DefectCode.OUT_OF_RANGE):
        if d["source"] == "lis":
            lab = labs[d["record_id"]]
            assert abs(lab["reported_value"]) > 10 * abs(lab["value"]) or lab["value"] == 0


def test_late_corrections(dirty_hospital: HospitalReport) -> None:
    late = defects(dirty_hospital, DefectCode.LATE_CORRECTION)
    assert {d["source"] for d in late} >= {"lis"}
    labs = {r["lab_id"]: r for r in truth(dirty_hospital, "labs")}
    for d in late:
        if d["source"] == "lis":
            assert labs[d["record_id"]]["file"].endswith("_corr.hl7")


def test_missing_fields_in_other_sources(dirty_hospital: HospitalReport) -> None:
    out = dirty_hospital.out
    for d in defects(dirty_hospital, DefectCode.MISSING_FIELD):
        if d["file"] in _truncated(dirty_hospital):
            continue
        if d["source"] == "pacs":
            assert pydicom.dcmread(out / d["file"]).PatientID == ""
        elif d["source"] == "fhir":
            lines = (out / d["file"]).read_text("utf-8").splitlines()
            patient = next(json.loads(x) for x in lines if f'"id":"{d["record_id"]}"' in x)
            assert "birthDate" not in patient
