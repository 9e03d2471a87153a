"""Conformance of the HL7 v2 and CDA silver transforms on the public samples of refdata.

Every HL7 v2 message that bronze lands from ``$LAKEHOUSE_REFDATA/hl7v2`` yields silver rows
or a catalogued reject (both counted); every C-CDA fragment that bronze lands from
``ccda-fragments`` yields its coded entries (exact codes checked on known fragments) or a
catalogued reject.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lakehouse.silver.cda import transform_emr
from lakehouse.silver.hl7 import transform_lis
from lakehouse.sources.encoding import charsets_enabled
from tests.integration.silver.test_hl7v2_transform import bronze_rows, collect

pytestmark = [pytest.mark.spark, pytest.mark.refdata, pytest.mark.slow]


def _stage(refdata: Path, folder: str, pattern: str, dest: Path, source: str) -> None:
    for i, f in enumerate(sorted((refdata / folder).rglob(pattern))):
        target = dest / source / "REF" / f"{i:03d}_{f.name.replace(' ', '_')}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)


def _records(got: dict[str, list[dict[str, Any]]]) -> tuple[set[Any], set[Any]]:
    rows = {
        (r["bronze_file_sha256"], r["bronze_record_index"])
        for t, rs in got.items()
        if t.startswith("silver.")
        for r in rs
    }
    rejects = {(r["bronze_file_sha256"], r["bronze_record_index"]) for r in got["rejects"]}
    return rows, rejects


def test_every_landed_hl7_message_makes_rows_or_a_reject(
    spark: Any, refdata: Path, tmp_path: Path
) -> None:
    _stage(refdata, "hl7v2", "*.hl7", tmp_path, "lis")
    with charsets_enabled(spark):
        bronze = bronze_rows(spark, tmp_path, "lis").cache()
        landed = {(r["file_sha256"], r["record_index"]) for r in bronze.collect()}
        got = collect(transform_lis(bronze))
        msgs = {
            (r["file_sha256"], r["record_index"]): r["message_code"]
            for r in bronze.select("file_sha256", "record_index", "message_code").collect()
        }
        bronze.unpersist()
    rows, rejects = _records(got)
    assert len(landed) >= 40
    assert rows | rejects == landed
    # A message without rows has a reject; both counted.
    assert len(landed - rows) <= len(rejects)
    codes = {r["error_code"] for r in got["rejects"]}
    assert codes <= {"LH-SLV-001", "LH-SLV-002", "LH-SLV-003", "LH-SLV-004"}
    for key in landed - rows:
        assert key in rejects
    # Known samples: python-hl7's ORU (SN value, PID-3 without type), smolder's v2.4 A03.
    labs = got["silver.lab_result"]
    glucose = [r for r in labs if r["test_local_code"] == "1554-5"]
    assert glucose
    sn = [r for r in glucose if r["value_type"] == "SN"]
    assert sn
    assert all(r["value_as_number"] == 182.0 for r in sn)
    assert all(r["unit_source"] == "mg/dl" for r in glucose)
    assert len({r["result_id"] for r in labs}) == len(labs) or _twins_only(labs)
    patients = {r["patient_id"]: r for r in got["silver.patient"]}
    smolder = patients["d40726da-9b7a-49eb-9eeb-e406708bbb60"]
    assert smolder["name"] == "Heller Keneth"
    assert smolder["address_city"] == "Northampton"
    assert patients["555-44-4444"]["name"] == "EVERYWOMAN EVE E"
    # ACK-like and query messages without PID are skipped with LH-SLV-004, never lost.
    no_pid = [r for r in got["rejects"] if r["error_code"] == "LH-SLV-004"]
    assert all(msgs[(r["bronze_file_sha256"], r["bronze_record_index"])] for r in no_pid)
    print(  # the figures docs/silver.md quotes
        f"hl7 refdata: {len(landed)} landed, {len(rows)} with rows, "
        f"{len(landed - rows)} rejected only, rejects by code "
        f"{sorted((c, sum(r['error_code'] == c for r in got['rejects'])) for c in codes)}"
    )


def _twins_only(labs: list[dict[str, Any]]) -> bool:
    """Results sharing an id come from the same message (resent copies across files)."""
    seen: dict[str, set[Any]] = {}
    for r in labs:
        seen.setdefault(r["result_id"], set()).add(r["bronze_file_sha256"])
    return all(
        len(files) == sum(r["result_id"] == rid for r in labs) for rid, files in seen.items()
    )


def test_landed_ccda_fragments_yield_their_coded_entries(
    spark: Any, refdata: Path, tmp_path: Path
) -> None:
    _stage(refdata, "ccda-fragments", "*.xml", tmp_path, "emr")
    with charsets_enabled(spark):
        bronze = bronze_rows(spark, tmp_path, "emr").cache()
        names = {
            (r["file_sha256"], r["record_index"]): r["file_path"].rsplit("/", 1)[-1]
            for r in bronze.select("file_sha256", "record_index", "file_path").collect()
        }
        got = collect(transform_emr(bronze))
        bronze.unpersist()
    rows, rejects = _records(got)
    landed = set(names)
    assert len(landed) >= 200
    assert rows | rejects == landed

    def by_file(table: str, fragment: str) -> list[dict[str, Any]]:
        return [
            r
            for r in got[table]
            if fragment in names[(r["bronze_file_sha256"], r["bronze_record_index"])]
        ]

    problems = by_file("silver.diagnosis", "PROBLEMS_in_Empty")
    assert {(r["source_code"], r["source_vocabulary"]) for r in problems} == {
        ("V49.75", "ICD9CM"),
        ("385093006", "SNOMED"),
    }
    med = by_file("silver.medication_order", "Single_administration_of_medication")
    assert [(r["drug_source_code"], r["drug_source_vocabulary"]) for r in med] == [
        ("243670", "RXNORM")
    ]
    proc = by_file("silver.procedure", "Procedure_Alternatives")
    assert [r["source_code"] for r in proc] == ["44950"]
    enc = by_file("silver.encounter", "Encounter_Activity")
    assert [r["encounter_class_source"] for r in enc] == ["99213"]
    totals = {t: len(rs) for t, rs in got.items() if t != "rejects"}
    assert totals["silver.procedure"] >= 20
    assert totals["silver.clinical_document"] == sum(
        1 for r in got["silver.clinical_document"] if r["document_id"]
    )
    codes = {r["error_code"] for r in got["rejects"]}
    assert codes <= {"LH-SLV-010", "LH-SLV-011", "LH-SLV-012"}
    print(
        f"ccda refdata: {len(landed)} landed, {len(rows)} with rows, totals {totals}, "
        f"rejects {sorted((c, sum(r['error_code'] == c for r in got['rejects'])) for c in codes)}"
    )
