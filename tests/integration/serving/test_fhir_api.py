"""The FHIR R4 read API over real HTTPS (uvicorn in a thread, the test run's one Spark
session, the serving tests' small seeded world): every resource validates as FHIR
(``fhir.resources`` R4B models, the R4 resources used here unchanged), search by patient,
code and date prefixes with paging, ``$everything``, a patient outside the user's scope
refused and audited, 401 without a session, and errors as OperationOutcome."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from lakehouse.governance.audit import patient_ref
from serving.fhir.ids import encode
from tests.integration.serving.conftest import (
    KEY,
    NOTE_DEID_TEXT,
    NOTE_TEXT,
    NOW,
    PASSWORD,
    Service,
    client,
)

pytestmark = pytest.mark.spark

R4 = "/fhir/r4"


def _get(service: Service, token: str | None, path: str, **params: Any) -> httpx.Response:
    with client(service, token) as c:
        return c.get(path if path.startswith("http") else R4 + path, params=params or None)


def _ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = r.json()
    _valid(body)
    return body


def _valid(resource: dict[str, Any]) -> None:
    """Validates the resource (and a Bundle's entries) against the FHIR models."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def _outcome(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    _valid(body)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["details"]["coding"][0]["code"] == code
    assert "Traceback" not in r.text


def _ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def test_metadata_is_open_and_everything_else_needs_a_session(service: Service) -> None:
    cap = _ok(_get(service, None, "/metadata"))
    assert cap["fhirVersion"] == "4.0.1"
    served = {r["type"] for r in cap["rest"][0]["resource"]}
    assert {"Patient", "Encounter", "Condition", "Observation", "MedicationRequest"} <= served
    for path in ("/Patient/H1-P1", "/Observation", "/Patient/H1-P1/$everything"):
        r = _get(service, None, path)
        _outcome(r, 401, "LH-SEC-005")
        assert r.headers["www-authenticate"].startswith("Bearer")
    _outcome(_get(service, "forged.token", "/Patient/H1-P1"), 401, "LH-SEC-005")


def test_bad_requests_answer_operation_outcomes(service: Service, token: str) -> None:
    _outcome(_get(service, token, "/Specimen/x"), 404, "LH-FHR-001")
    _outcome(_get(service, token, "/Observation", value="7"), 400, "LH-FHR-002")
    _outcome(_get(service, token, "/Observation", date="yesterday"), 400, "LH-FHR-002")
    _outcome(_get(service, token, "/Observation", _count="0"), 400, "LH-FHR-002")
    _outcome(_get(service, token, "/Observation/not-an-id"), 404, "LH-FHR-003")


def test_reads_validate_and_keep_codings_and_source_ids(service: Service, token: str) -> None:
    patient = _ok(_get(service, token, "/Patient/H1-P1"))
    assert (patient["gender"], patient["birthDate"]) == ("male", "1960-05-17")
    assert patient["identifier"][0] == {
        "use": "official",
        "system": "urn:lakehouse:H1:lis:patient",
        "value": "P1",
    }
    assert {"system": "urn:oid:2.16.156.10011.1.2", "value": "P1-HIS"} in patient["identifier"]

    obs = _ok(_get(service, token, "/Observation/H1-lis-R1"))  # R2 is corrected elsewhere
    assert obs["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "4548-4",
        "display": "Hemoglobin A1c",
    }
    assert obs["valueQuantity"] == {
        "value": 7.9,
        "unit": "%",
        "system": "http://unitsofmeasure.org",
        "code": "%",
    }
    assert (obs["status"], obs["subject"]["reference"]) == ("final", "Patient/H1-P1")
    assert obs["effectiveDateTime"][-6:] in ("+08:00", "+00:00")  # local time with its zone

    cond = _ok(_get(service, token, "/Condition/H1-his-DX1"))
    icd, local = cond["code"]["coding"]
    assert (icd["system"], icd["code"]) == ("http://hl7.org/fhir/sid/icd-10", "E11.9")
    assert (local["system"], local["code"]) == ("urn:lakehouse:H1:vocabulary:LOCAL:H1:dx", "TNB")
    assert cond["encounter"]["identifier"] == {"system": "urn:lakehouse:H1:visit", "value": "V1"}

    med = _ok(_get(service, token, "/MedicationRequest/H1-his-M1"))
    atc = med["medicationCodeableConcept"]["coding"][0]
    assert (atc["system"], atc["code"]) == ("http://www.whocc.no/atc", "A10BA02")
    dose = med["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert dose == {"value": 0.5, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}

    enc = _ok(_get(service, token, "/Encounter/H1-his-V1"))
    assert (enc["class"]["code"], enc["status"]) == ("IMP", "finished")
    # Each patient-level read is audited with the patient's pseudonym.
    reads = [r for r in service.audit.rows if r["patient_ref"] == patient_ref(KEY, "P1")]
    assert reads
    assert all(r["actor"] == "dr_a" for r in reads)


def test_search_by_patient_code_date_and_pages(service: Service, token: str) -> None:
    hba1c = _ok(
        _get(service, token, "/Observation", patient="H1-P1", code="http://loinc.org|4548-4")
    )
    assert (hba1c["type"], hba1c["total"]) == ("searchset", 2)
    assert _ids(hba1c) == ["H1-lis-R2", "H1-lis-R1"]  # newest first
    # Labs were taken 90 (R1), 60 (R3) and 5 (R2) days ago: a date range, AND-ed prefixes.
    since, until = ((NOW - timedelta(days=d)).date().isoformat() for d in (70, 30))
    with client(service, token) as c:
        r = c.get(
            f"{R4}/Observation",
            params=[
                ("patient", "Patient/H1-P1"),
                ("category", "laboratory"),
                ("date", f"ge{since}"),
                ("date", f"lt{until}"),
            ],
        )
    assert _ids(_ok(r)) == ["H1-lis-R3"]
    recent = _ok(
        _get(service, token, "/Observation", patient="H1-P1", code="4548-4", date=f"gt{until}")
    )
    assert (_ids(recent), recent["total"]) == (["H1-lis-R2"], 1)
    assert _ok(_get(service, token, "/Condition", patient="H1-P1", code="E11.9"))["total"] == 1

    first = _ok(
        _get(
            service,
            token,
            "/Observation",
            patient="H1-P1",
            category="http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
            _count="2",
            _include="Observation:patient",
        )
    )
    assert first["total"] == 3
    assert len(_ids(first)) == 2
    assert _ids(first, "include") == ["H1-P1"]
    nxt = {link["relation"]: link["url"] for link in first["link"]}["next"]
    second = _ok(_get(service, token, nxt))
    assert len(_ids(second)) == 1
    assert "next" not in {link["relation"] for link in second["link"]}
    assert set(_ids(first)) | set(_ids(second)) == {"H1-lis-R1", "H1-lis-R2", "H1-lis-R3"}


def test_everything_is_the_patients_record(service: Service, token: str) -> None:
    bundle = _ok(_get(service, token, "/Patient/H1-P1/$everything"))
    types = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types == [
        "Condition",
        "DiagnosticReport",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "ImagingStudy",
        "MedicationRequest",
        "Observation",
        "Observation",
        "Observation",
        "Observation",
        "Observation",
        "Patient",
        "Procedure",
    ]
    assert bundle["total"] == 14
    assert all(
        e["resource"].get("subject", {}).get("reference", "Patient/H1-P1") == "Patient/H1-P1"
        for e in bundle["entry"]
    )


def test_patient_outside_scope_is_refused_audited_and_not_revealed(
    service: Service, token: str
) -> None:
    other = _get(service, token, "/Patient/H1-P2")
    _outcome(other, 403, "LH-SEC-006")
    last = service.audit.rows[-1]
    assert (last["action"], last["outcome"], last["actor"]) == ("access_denied", "denied", "dr_a")
    assert last["patient_ref"] == patient_ref(KEY, "P2")
    assert "李四" not in other.text
    assert "P2" not in other.text
    # A patient that does not exist answers the same as one the user may not see.
    unknown = _get(service, token, "/Patient/H1-P9")
    _outcome(unknown, 403, "LH-SEC-006")
    assert unknown.json()["issue"] == other.json()["issue"]
    _outcome(_get(service, token, "/Observation", patient="H1-P2"), 403, "LH-SEC-006")
    _outcome(_get(service, token, "/Patient/H1-P2/$everything"), 403, "LH-SEC-006")
    # Their rows are not found by id, and a search without a patient leaves them out.
    _outcome(_get(service, token, "/Observation/H1-lis-R4"), 404, "LH-FHR-003")
    every = _ok(_get(service, token, "/Observation", code="4548-4"))
    assert every["total"] == 2
    assert "H1-lis-R4" not in _ids(every)


def _login(service: Service, username: str) -> str:
    with client(service) as c:
        r = c.post("/api/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_the_further_types_validate_with_standard_codings(service: Service, token: str) -> None:
    cap = _ok(_get(service, None, "/metadata"))
    served = {r["type"]: r for r in cap["rest"][0]["resource"]}
    assert {
        "Procedure", "DiagnosticReport", "DocumentReference", "ImagingStudy", "Organization",
        "Practitioner",
    } <= set(served)  # fmt: skip
    assert {"name": "category", "type": "token"} in served["Observation"]["searchParam"]

    vital = _ok(_get(service, token, "/Observation/H1-his-vs-VS1"))
    assert vital["category"][0]["coding"][0]["code"] == "vital-signs"
    assert vital["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "8867-4",
        "display": "Heart rate",
    }
    assert vital["valueQuantity"] == {
        "value": 72.0,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert vital["identifier"][0]["system"] == "urn:lakehouse:H1:his:vital_sign"

    proc = _ok(_get(service, token, "/Procedure/H1-his-PR1"))
    icd9, local = proc["code"]["coding"]
    assert (icd9["system"], icd9["code"]) == ("http://hl7.org/fhir/sid/icd-9-cm", "87.03")
    assert (local["code"], proc["status"]) == ("CT-HEAD", "completed")

    report = _ok(_get(service, token, "/DiagnosticReport/H1-lis-O1"))
    assert sorted(r["reference"] for r in report["result"]) == [
        "Observation/H1-lis-R1",
        "Observation/H1-lis-R3",
    ]
    assert (report["status"], report["code"]["coding"][0]["code"]) == ("final", "DM")

    study_id = encode("H1", "pacs", "1.2.840.99.1")
    study = _ok(_get(service, token, f"/ImagingStudy/{study_id}"))
    assert study["identifier"][0]["value"] == "urn:oid:1.2.840.99.1"
    assert [s["uid"] for s in study["series"]] == ["1.2.840.99.1.1"]
    assert study["series"][0]["modality"]["code"] == "CT"

    org = _ok(_get(service, token, "/Organization/H1-his-H1"))
    assert org["name"] == "第一医院"
    assert {"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.156.10011.99"} in org[
        "identifier"
    ]


def test_search_by_category_code_and_date_merges_labs_and_vitals(
    service: Service, token: str
) -> None:
    vitals = _ok(_get(service, token, "/Observation", patient="H1-P1", category="vital-signs"))
    assert (_ids(vitals), vitals["total"]) == (["H1-his-vs-VS1", "H1-his-vs-VS2"], 2)
    labs = _ok(_get(service, token, "/Observation", patient="H1-P1", category="laboratory"))
    assert labs["total"] == 3
    # Both kinds, newest first across them, paged through the merge: R2 5, VS1 4 days ago...
    first = _ok(_get(service, token, "/Observation", patient="H1-P1", _count="2"))
    assert (first["total"], _ids(first)) == (5, ["H1-his-vs-VS1", "H1-lis-R2"])
    nxt = {link["relation"]: link["url"] for link in first["link"]}["next"]
    second = _ok(_get(service, token, nxt))
    assert _ids(second) == ["H1-his-vs-VS2", "H1-lis-R3"]
    # Code and date range select exactly the matching rows (VS3 is another department's).
    since = (NOW - timedelta(days=10)).date().isoformat()
    hr = _ok(
        _get(service, token, "/Observation", code="http://loinc.org|8867-4", date=f"ge{since}")
    )
    assert (_ids(hr), hr["total"]) == (["H1-his-vs-VS1"], 1)
    old = _ok(_get(service, token, "/Observation", code="8480-6", date=f"lt{since}"))
    assert _ids(old) == ["H1-his-vs-VS2"]
    proc = _ok(
        _get(
            service,
            token,
            "/Procedure",
            patient="H1-P1",
            code="http://hl7.org/fhir/sid/icd-9-cm|87.03",
        )
    )
    assert _ids(proc) == ["H1-his-PR1"]
    assert _ok(_get(service, token, "/DiagnosticReport", code="HBA1C"))["total"] == 1
    _outcome(_get(service, token, "/Procedure", category="x"), 400, "LH-FHR-002")


def test_note_text_is_raw_or_deidentified_as_the_policy_decides(
    service: Service, token: str
) -> None:
    def text(doc: dict[str, Any]) -> str:
        return base64.b64decode(doc["content"][0]["attachment"]["data"]).decode("utf-8")

    raw = _ok(_get(service, token, "/DocumentReference/H1-emr-N1"))
    assert text(raw) == NOTE_TEXT
    assert "securityLabel" not in raw
    nurse = _login(service, "nurse_a")  # no free_text or name grant: the de-identified text
    masked = _ok(_get(service, nurse, "/DocumentReference/H1-emr-N1"))
    assert text(masked) == NOTE_DEID_TEXT
    assert masked["securityLabel"][0]["coding"][0]["code"] == "MASKED"
    assert "author" not in masked
    assert "张三" not in str(masked)
    # Staff: the nurse's site-scoped role reads them, without the names it may not see; a
    # department-scoped role cannot be scoped on silver.provider, so the guard refuses.
    doc = _ok(_get(service, nurse, "/Practitioner/H1-his-D7"))
    assert (doc["qualification"][0]["code"]["text"], "name" in doc) == ("主任医师", False)
    _outcome(_get(service, token, "/Practitioner/H1-his-D7"), 403, "LH-SEC-006")


def _export(service: Service, token: str, path: str, **params: str) -> dict[str, Any]:
    """Kick off a bulk export, poll its status until done, return the manifest."""
    with client(service, token) as c:
        r = c.get(R4 + path, params=params, headers={"Prefer": "respond-async"})
        assert r.status_code == 202, r.text
        status = r.headers["content-location"]
        deadline = time.monotonic() + 600
        while (r := c.get(status)).status_code == 202:
            assert time.monotonic() < deadline, "the export did not finish"
            assert r.headers["x-progress"]
            time.sleep(0.5)
    assert r.status_code == 200, r.text
    manifest: dict[str, Any] = r.json()
    manifest["status"] = status
    return manifest


def test_bulk_export_writes_ndjson_of_the_callers_scope_audited_once(
    service: Service, token: str
) -> None:
    _outcome(_get(service, token, "/$export"), 400, "LH-FHR-004")
    with client(service, token) as c:
        async_ = {"Prefer": "respond-async"}
        bad = c.get(f"{R4}/$export", params={"_type": "Specimen"}, headers=async_)
        _outcome(bad, 400, "LH-FHR-005")
        _outcome(
            c.get(f"{R4}/$export", params={"_since": "2026"}, headers=async_), 400, "LH-FHR-005"
        )
    before = len(service.audit.rows)
    manifest = _export(
        service, token, "/$export", _type="Patient,Observation,DocumentReference,ImagingStudy"
    )
    assert manifest["requiresAccessToken"] is True
    counts: dict[str, int] = {}
    lines: dict[str, list[dict[str, Any]]] = {}
    with client(service, token) as c:
        for out in manifest["output"]:
            r = c.get(out["url"])
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/fhir+ndjson")
            rows = [json.loads(line) for line in r.text.splitlines()]
            assert len(rows) == out["count"]
            for resource in rows:
                _valid(resource)
                assert resource["resourceType"] == out["type"]
            counts[out["type"]] = counts.get(out["type"], 0) + out["count"]
            lines.setdefault(out["type"], []).extend(rows)
    # The department-A clinician's scope: P1 only (P2's R4 and VS3 are left out).
    assert counts == {"Patient": 1, "Observation": 5, "DocumentReference": 1, "ImagingStudy": 1}
    assert {o["id"] for o in lines["Observation"]} == {
        "H1-lis-R1", "H1-lis-R2", "H1-lis-R3", "H1-his-vs-VS1", "H1-his-vs-VS2",
    }  # fmt: skip
    assert lines["ImagingStudy"][0]["series"][0]["uid"] == "1.2.840.99.1.1"
    # One export event for the whole export, with the patient count.
    events = [r for r in service.audit.rows[before:] if r["action"] == "export"]
    assert len(events) == 1
    assert (events[0]["row_count"], events[0]["actor"], events[0]["outcome"]) == (
        1,
        "dr_a",
        "allowed",
    )
    assert json.loads(events[0]["detail"])["resources"] == 8
    # Another user does not see the job or its files; DELETE removes them.
    nurse = _login(service, "nurse_a")
    _outcome(_get(service, nurse, manifest["status"]), 404, "LH-FHR-006")
    _outcome(_get(service, nurse, manifest["output"][0]["url"]), 404, "LH-FHR-006")
    with client(service, token) as c:
        assert c.delete(manifest["status"]).status_code == 202
    _outcome(_get(service, token, manifest["status"]), 404, "LH-FHR-006")
    _outcome(_get(service, token, manifest["output"][0]["url"]), 404, "LH-FHR-006")


def test_patient_export_of_the_deidentified_role_holds_deidentified_notes(
    service: Service,
) -> None:
    nurse = _login(service, "nurse_a")
    manifest = _export(service, nurse, "/Patient/$export", _type="DocumentReference")
    (out,) = manifest["output"]
    with client(service, nurse) as c:
        (doc,) = [json.loads(line) for line in c.get(out["url"]).text.splitlines()]
    _valid(doc)
    data = doc["content"][0]["attachment"]["data"]
    assert base64.b64decode(data).decode("utf-8") == NOTE_DEID_TEXT
    assert doc["securityLabel"][0]["coding"][0]["code"] == "MASKED"
