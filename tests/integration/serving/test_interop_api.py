"""The 互联互通 (4A) query services and WS/T 500 documents over HTTPS (issue #14), on the
serving tests' one seeded world (tests/integration/serving/conftest.py): each service
answers exactly the seeded rows of the known patient P1 and encounter V1, through the same
guarded, audited path as the FHIR API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from defusedxml import ElementTree as SafeTree

from lakehouse.governance.audit import patient_ref
from tests.integration.serving.conftest import HOSTILE_TEXT, KEY, PASSWORD, Service, client

pytestmark = pytest.mark.spark

NS = "{urn:hl7-org:v3}"
BASE = "/interop/4a"

#: service -> (its key field, the keys the seeded world holds for institution H1, patient P1)
TRUTH: dict[str, tuple[str, list[str]]] = {
    "patients": ("patient_id", ["P1"]),
    "registrations": ("encounter_id", []),  # P1's one visit is an inpatient stay
    "inpatient-encounters": ("encounter_id", ["V1"]),
    "transfers": ("transfer_id", ["T1"]),
    "discharges": ("encounter_id", ["V1"]),
    "orders": ("medication_order_id", ["M1"]),
    "lab-requests": ("order_id", ["O2", "O1"]),  # newest first: O2's one result, then O1
    "exam-requests": ("accession_number", ["ACC1"]),
    "surgery-requests": ("procedure_id", []),  # PR1 is a CT (ICD-9-CM-3 87.03), no operation
    "pathology-requests": ("request_id", []),  # no source
    "transfusion-requests": ("request_id", []),  # no source
}
SITE_TRUTH = {
    "organizations": ("org_code", ["H1"]),
    "departments": ("dept_code", ["A", "B"]),
    "staff": ("provider_id", ["D7"]),
}


def _get(service: Service, token: str | None, path: str, **params: str) -> httpx.Response:
    with client(service, token) as c:
        return c.get(f"{BASE}/{path}", params=params)


def _ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    for value in ("李四", "张三", "P2"):
        assert value not in r.text


@pytest.fixture(scope="module")
def nurse_token(service: Service) -> str:
    """The site-scoped nurse: the staff table has no patient or department column, so a
    department-scoped role is refused it (the guard fails closed)."""
    with client(service) as c:
        r = c.post("/api/login", json={"username": "nurse_a", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_each_service_answers_the_seeded_rows_of_the_patient(
    service: Service, token: str, nurse_token: str
) -> None:
    for path, (key, expected) in TRUTH.items():
        body = _ok(_get(service, token, path, institution="H1", patient_id="P1"))
        assert [r[key] for r in body["rows"]] == expected, path
        assert body["total"] == len(expected), path
        assert body["service"] == path
        assert body["institution"] == "H1"
        if path in ("pathology-requests", "transfusion-requests"):
            assert body["sources"] == []
            assert "silver holds none" in body["note"]
    for path, (key, expected) in SITE_TRUTH.items():
        body = _ok(_get(service, nurse_token, path, institution="H1"))
        assert sorted(r[key] for r in body["rows"]) == expected, path

    patient = _ok(_get(service, token, "patients", institution="H1", patient_id="P1"))["rows"][0]
    assert (patient["name"], patient["sex_code"], patient["birth_date"]) == (
        "张三", "1", "1960-05-17",
    )  # fmt: skip
    labs = _ok(_get(service, token, "lab-requests", institution="H1", patient_id="P1"))["rows"]
    assert {r["order_id"]: r["result_count"] for r in labs} == {"O1": 2, "O2": 1}
    transfer = _ok(_get(service, token, "transfers", institution="H1", encounter_id="V1"))
    assert transfer["rows"][0]["to_dept_code"] == "A"
    # A date range and paging: O1's results were collected 60 and 90 days ago.
    old = _ok(
        _get(service, token, "lab-requests", institution="H1", patient_id="P1",
             end="2000-01-01T00:00:00")
    )  # fmt: skip
    assert old["rows"] == []
    assert old["total"] == 0
    first = _ok(_get(service, nurse_token, "departments", institution="H1", limit="1"))
    assert len(first["rows"]) == 1
    assert first["total"] == 2


def test_bad_parameters_answer_catalogued_errors(service: Service, token: str) -> None:
    r = _get(service, token, "staff", institution="H1", patient_id="P1")
    _refused(r, 400, "LH-IOP-002")  # staff take no patient
    r = _get(service, token, "staff", institution="H1")
    _refused(r, 403, "LH-SEC-006")  # the department-scoped clinician: nothing to scope by
    r = _get(service, token, "orders", institution="H1", colour="red")
    _refused(r, 422, "LH-SRV-001")
    r = _get(service, token, "orders")  # institution is required
    _refused(r, 422, "LH-SRV-001")


def test_unauthorized_callers_are_refused_with_an_audit_record(
    service: Service, token: str
) -> None:
    _refused(_get(service, None, "patients", institution="H1", patient_id="P1"), 401, "LH-SEC-005")

    # P2 is a department-B patient; dr_a works in department A.
    before = len(service.audit.rows)
    r = _get(service, token, "orders", institution="H1", patient_id="P2")
    _refused(r, 403, "LH-SEC-006")
    denied = [e for e in service.audit.rows[before:] if e["action"] == "access_denied"]
    assert [e["patient_ref"] for e in denied] == [patient_ref(KEY, "P2")]
    assert denied[0]["actor"] == "dr_a"

    before = len(service.audit.rows)
    r = _get(service, token, "patients", institution="H2", patient_id="P1")
    _refused(r, 403, "LH-IOP-001")
    denied = [e for e in service.audit.rows[before:] if e["action"] == "access_denied"]
    assert [(e["actor"], e["reason"]) for e in denied] == [("dr_a", "LH-IOP-001")]


TEMPLATES = {
    "C0001": "2.16.156.10011.2.1.1.21",
    "C0053": "2.16.156.10011.2.1.1.73",
    "C0032": "2.16.156.10011.2.1.1.52",
    "C0034": "2.16.156.10011.2.1.1.54",
}
ORIGINS = {"C0034": "stored", "C0001": "rendered", "C0053": "rendered", "C0032": "rendered"}


def _document(service: Service, token: str, code: str) -> Any:
    """V1's document ``code``: parsed with defusedxml, its WS/T 500 header checked."""
    r = _get(service, token, f"documents/{code}", institution="H1", encounter_id="V1")
    assert r.status_code == 200, r.text
    assert r.headers["x-document-origin"] == ORIGINS[code]
    root = SafeTree.fromstring(r.content, forbid_dtd=True)  # no DTD, no entities
    assert root.tag == f"{NS}ClinicalDocument"
    assert root.find(f"{NS}templateId").get("root") == TEMPLATES[code]
    header = root.find(f"{NS}code")
    assert (header.get("code"), header.get("codeSystem")) == (code, "2.16.156.10011.2.4")
    ids = [i.get("extension") for i in root.iter(f"{NS}id")]
    assert "V1" in ids
    assert "P1" in ids
    return root


def test_documents_of_an_encounter_are_stored_or_rendered_well_formed(
    service: Service, token: str
) -> None:
    listing = _ok(_get(service, token, "documents", institution="H1", encounter_id="V1"))
    assert {d["code"]: d["origin"] for d in listing["documents"]} == ORIGINS

    root = _document(service, token, "C0053")  # rendered: V1's diagnosis, coded
    values = [v.get("code") for v in root.iter(f"{NS}value")]
    assert values == ["E11.9", "E11.9"]  # 入院诊断 and 出院诊断
    titles = [t.text for t in root.iter(f"{NS}title")][1:]
    assert titles == ["入院诊断", "出院诊断"]  # no orders or labs name V1: no sections

    root = _document(service, token, "C0034")  # stored: the section's markup stays text
    (text,) = [t.text for t in root.iter(f"{NS}text")]
    assert text == HOSTILE_TEXT.replace("\x01", "")
    assert not list(root.iter(f"{NS}script"))

    r = _get(service, token, "documents/C0002", institution="H1", encounter_id="V1")
    _refused(r, 404, "LH-IOP-003")  # an inpatient stay has no outpatient record
    r = _get(service, token, "documents/C0001", institution="H1", encounter_id="NOPE")
    _refused(r, 404, "LH-IOP-003")
    r = _get(service, token, "documents/C0001", institution="H2", encounter_id="V1")
    _refused(r, 403, "LH-IOP-001")


@pytest.mark.slow
def test_the_other_rendered_documents_of_the_stay(service: Service, token: str) -> None:
    for code in ("C0001", "C0032"):
        root = _document(service, token, code)
        assert [v.get("code") for v in root.iter(f"{NS}value")] == ["E11.9"]
