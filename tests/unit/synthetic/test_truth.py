"""The truth manifest and the emitted data agree, both ways (clean hospital: no dirt)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pydicom
from sqlalchemy import create_engine, text

from lakehouse.synthetic import HospitalReport
from lakehouse.synthetic.identity import is_valid_id_card
from tests.unit.synthetic.readers import parse_hl7


def truth(report: HospitalReport, entity: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(
        report.out / "truth" / f"{entity}.parquet"
    ).to_pylist()
    return rows


def test_lis_results_match_truth_labs(clean_hospital: HospitalReport) -> None:
    emitted = Counter()
    for path in sorted((clean_hospital.out / "landing/lis/H0001").glob("ORU_R01_*.hl7")):
        for msg in parse_hl7(path):
            ctrl = str(msg.segment("MSH")[10])
            for obx in msg.segments("OBX"):
                emitted[(ctrl, str(obx[3][0][0]), float(str(obx[5])))] += 1
    labs = [r for r in truth(clean_hospital, "labs") if r["source_system"] == "lis"]
    expected = Counter((r["record_id"], r["code"], r["reported_value"]) for r in labs)
    assert emitted == expected
    assert all(r["value"] == r["reported_value"] and r["unit"] == r["reported_unit"] for r in labs)


def test_fhir_resources_match_truth(clean_hospital: HospitalReport) -> None:
    fhir = clean_hospital.out / "landing/fhir/A0001"
    resources: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(fhir.glob("*.ndjson")):
        for line in path.read_text("utf-8").splitlines():
            data = json.loads(line)
            resources.setdefault(data["resourceType"], []).append(data)
    labs = {
        r["lab_id"]: r for r in truth(clean_hospital, "labs") if r["institution_code"] == "A0001"
    }
    observations = {o["id"]: o for o in resources["Observation"]}
    assert set(observations) == {f"obs-{k}" for k in labs}
    for lab_id, lab in labs.items():
        assert observations[f"obs-{lab_id}"]["valueQuantity"]["value"] == lab["reported_value"]
    ids = [r for r in truth(clean_hospital, "source_ids") if r["institution_code"] == "A0001"]
    assert {p["identifier"][0]["value"] for p in resources["Patient"]} == {
        r["source_id"] for r in ids
    }
    encounters = [
        e for e in truth(clean_hospital, "encounters") if e["institution_code"] == "A0001"
    ]
    assert len(resources["Encounter"]) == len(encounters)
    meds = [m for m in truth(clean_hospital, "medications") if m["institution_code"] == "A0001"]
    assert len(resources.get("MedicationRequest", [])) == len(meds)


def test_csv_rows_match_truth(clean_hospital: HospitalReport) -> None:
    site = clean_hospital.out / "landing/csv/A0002"

    def rows(table: str) -> list[list[str]]:
        out: list[list[str]] = []
        for path in sorted(site.glob(f"{table}_*.csv")):
            out += list(csv.reader(io.StringIO(path.read_bytes().decode("gb18030"), newline="")))[
                1:
            ]
        return out

    ids = {
        r["source_id"]
        for r in truth(clean_hospital, "source_ids")
        if r["institution_code"] == "A0002"
    }
    assert {r[0] for r in rows("patients")} == ids
    labs = {
        r["record_id"]: r for r in truth(clean_hospital, "labs") if r["institution_code"] == "A0002"
    }
    emitted = {r[0]: float(r[4]) for r in rows("labs")}
    assert emitted == {k: v["reported_value"] for k, v in labs.items()}
    codes = {r["local_code"] for r in truth(clean_hospital, "local_codes")}
    assert {r[2] for r in rows("diagnoses")} <= codes
    assert {r[2] for r in rows("labs")} <= codes


def test_his_rows_match_truth(clean_hospital: HospitalReport) -> None:
    engine = create_engine(f"sqlite:///{clean_hospital.out / 'his' / 'his.sqlite'}")
    with engine.connect() as conn:
        patients = {r[0] for r in conn.execute(text("select patient_id from patients"))}
        visits = {r[0] for r in conn.execute(text("select visit_no from visits"))}
        diags = {(r[0], r[1]) for r in conn.execute(text("select diag_id, icd10 from diagnoses"))}
    engine.dispose()
    his_ids = {
        r["source_id"] for r in truth(clean_hospital, "source_ids") if r["source_system"] == "his"
    }
    assert patients == his_ids
    encs = [e for e in truth(clean_hospital, "encounters") if e["institution_code"] == "H0001"]
    assert visits == {e["visit_no"] for e in encs}
    dx = truth(clean_hospital, "diagnoses")
    assert diags == {(d["dx_id"], d["icd10"]) for d in dx if d["institution_code"] == "H0001"}


def test_images_match_labels(clean_hospital: HospitalReport) -> None:
    labels = truth(clean_hospital, "image_labels")
    on_disk = sorted((clean_hospital.out / "landing/pacs/H0001").glob("*.dcm"))
    assert len(on_disk) == len(labels)
    assert {lab["finding"] for lab in labels} >= {"normal", "nodule"}
    for lab in labels:
        ds = pydicom.dcmread(clean_hospital.out / lab["file"])
        assert ds.SOPInstanceUID == lab["sop_instance_uid"]
        img = ds.pixel_array.astype(float)
        cx, cy, r = lab["center_x"], lab["center_y"], lab["radius"]
        lesion = img[cy - r // 2 : cy + r // 2 + 1, cx - r // 2 : cx + r // 2 + 1].mean()
        if lab["finding"] == "nodule":
            assert lesion > 900
        elif lab["finding"] == "normal":
            assert lesion < 900


def test_note_annotations_point_at_their_text(clean_hospital: HospitalReport) -> None:
    notes = truth(clean_hospital, "note_annotations")
    texts: dict[str, str] = {}
    for a in notes:
        if a["file"] not in texts:
            texts[a["file"]] = (clean_hospital.out / a["file"]).read_text("utf-8")
        assert texts[a["file"]][a["start"] : a["end"]] == a["text"]
        if a["label"] == "ID_CARD":
            assert is_valid_id_card(a["text"])
    statuses = {a["assertion"] for a in notes if a["kind"] == "entity"}
    assert statuses == {"present", "negated", "possible", "family", "historical"}
    assert {a["label"] for a in notes if a["kind"] == "phi"} == {
        "NAME",
        "ID_CARD",
        "PHONE",
        "ADDRESS",
        "DATE",
    }
    languages = {
        d["language"] for d in truth(clean_hospital, "documents") if d["source"] == "notes"
    }
    assert languages == {"zh", "en"}


def test_documents_and_files_agree_with_disk(clean_hospital: HospitalReport) -> None:
    out = clean_hospital.out
    docs = {d["file"] for d in truth(clean_hospital, "documents")}
    on_disk = {
        str(p.relative_to(out))
        for s in ("emr", "notes")
        for p in (out / "landing" / s).rglob("*.*")
    }
    assert docs == on_disk
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    landed = {str(p.relative_to(out)) for p in (out / "landing").rglob("*") if p.is_file()}
    assert set(manifest["files"]) == landed | {"his/his.sqlite"}
    for rel, entry in list(manifest["files"].items())[::25]:
        data = (out / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    per_source = Counter(Path(rel).parts[1] for rel in landed)
    assert {k: v["files"] for k, v in manifest["counts"]["sources"].items()} == dict(per_source)


def test_persons_and_source_ids(clean_hospital: HospitalReport) -> None:
    persons = {p["person_id"]: p for p in truth(clean_hospital, "persons")}
    assert len(persons) == 80
    ids = truth(clean_hospital, "source_ids")
    assert {r["person_id"] for r in ids} == set(persons)
    assert len({(r["institution_code"], r["source_id"]) for r in ids}) == len(ids)
    for p in persons.values():
        if p["id_card"]:
            assert is_valid_id_card(p["id_card"])
            assert p["id_card"][6:14] == p["birth_date"].strftime("%Y%m%d")
            assert int(p["id_card"][16]) % 2 == (1 if p["sex"] == "M" else 0)
    for r in ids:
        if r["name_variant"] == "exact":
            assert r["recorded_name"] == persons[r["person_id"]]["name"]
    multi = Counter(r["person_id"] for r in ids)
    assert sum(1 for n in multi.values() if n > 1) >= 10  # the MPI has work to do


def test_conditions_drive_labs(clean_hospital: HospitalReport) -> None:
    diabetic = {
        c["person_id"] for c in truth(clean_hospital, "conditions") if c["condition"] == "T2DM"
    }
    a1c = [lab for lab in truth(clean_hospital, "labs") if lab["code"] == "HBA1C"]
    assert diabetic
    assert a1c
    for lab in a1c:
        assert (lab["value"] > 6.5) == (lab["person_id"] in diabetic)


def test_questions_have_evidence(clean_hospital: HospitalReport) -> None:
    labs = {r["lab_id"]: r for r in truth(clean_hospital, "labs")}
    questions = truth(clean_hospital, "questions")
    assert {q["language"] for q in questions} == {"zh", "en"}
    for q in questions:
        if q["answer_value"] is not None:
            assert labs[q["evidence_id"]]["value"] == q["answer_value"]
