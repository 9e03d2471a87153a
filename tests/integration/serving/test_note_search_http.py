"""Note search over HTTP on the seeded Delta tables: the clinician's hit cites a span of
silver.note at its version and resolves to exactly that text (guarded and audited); a role
without the free-text grant searches the de-identified text of silver.note_deid instead and
never sees the raw note. A cohort count is one guarded aggregate: scoped by the row filter,
audited without a patient ref, only the number returned."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from lakehouse.governance.audit import patient_ref
from tests.integration.serving.conftest import (
    KEY,
    NOTE_DEID_TEXT,
    NOTE_TEXT,
    PASSWORD,
    Service,
    client,
)

pytestmark = pytest.mark.spark


def _session(service: Service, user: str) -> str:
    with client(service) as c:
        r = c.post("/api/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def _ask_and_resolve(service: Service, user: str, question: str) -> tuple[str, dict[str, Any]]:
    token = _session(service, user)
    with client(service, token) as c:
        r = c.post("/api/ask", json={"question": question})
        assert r.status_code == 200, r.text
        (citation,) = r.json()["citations"]
        resolved = c.get(f"/api/citations/{quote(citation, safe='')}")
    assert resolved.status_code == 200, resolved.text
    return citation, resolved.json()


def test_note_search_spans_and_cohort_counts_guarded_and_audited(service: Service) -> None:
    note, deid = service.tables.note.name, service.tables.note_deid.name
    before = len(service.audit.rows)
    citation, body = _ask_and_resolve(service, "dr_a", "病历中提到口渴多饮的记录 患者P1")
    assert citation.startswith(f"{note}@")
    assert "|emr|N1:" in citation
    start, end = body["span"]
    assert body["span_text"] == NOTE_TEXT[start:end]
    assert "口渴多饮" in body["span_text"]
    reads = [r for r in service.audit.rows[before:] if note in (r["target"] or "")]
    assert [r["action"] for r in reads] == ["read", "read"]  # the search and the resolution
    assert all(r["actor"] == "dr_a" for r in reads)
    assert reads[0]["patient_ref"] == patient_ref(KEY, "P1")
    # The nurse's role has no free-text grant: the de-identified text, never the raw note.
    citation, body = _ask_and_resolve(service, "nurse_a", "notes mentioning 口渴多饮 for MRN P1")
    assert citation.startswith(f"{deid}@")
    start, end = body["span"]
    assert body["span_text"] == NOTE_DEID_TEXT[start:end]
    assert "张三" not in str(body)
    _cohort_count_is_scoped_and_names_no_patient(service)
    _cohort_list_cites_each_patients_records_and_audits_them(service)


def _cohort_count_is_scoped_and_names_no_patient(service: Service) -> None:
    token = _session(service, "dr_a")  # department A: P1 (E11.9); P2 (I10) is department B
    before = len(service.audit.rows)
    with client(service, token) as c:
        mine = c.post("/api/ask", json={"question": "How many patients with E11 in my department?"})
        other = c.post("/api/ask", json={"question": "how many patients with I10"})
        lab = c.post("/api/ask", json={"question": "糖化血红蛋白大于6的患者有多少"})
    assert "1 patient has a diagnosis coded E11*" in mine.json()["answer"]
    assert "0 patients" in other.json()["answer"]  # P2 is outside the department
    assert "共1位" in lab.json()["answer"]  # P1 (6.8, 7.9); P2's 9.1 is outside the scope
    for r in (mine, other, lab):
        assert r.json()["citations"] == []
        assert "P1" not in r.text
    reads = [r for r in service.audit.rows[before:] if r["action"] == "read"]
    assert len(reads) == 3
    assert all(r["patient_ref"] is None for r in reads)


def _cohort_list_cites_each_patients_records_and_audits_them(service: Service) -> None:
    token = _session(service, "dr_a")
    before = len(service.audit.rows)
    with client(service, token) as c:
        both = c.post(
            "/api/ask", json={"question": "列出诊断为E11且糖化血红蛋白大于6的患者"}
        ).json()
        # P2 (I10, HbA1c 9.1) is department B's: neither listed nor counted.
        hba1c = c.post("/api/ask", json={"question": "Which patients have HbA1c above 6?"}).json()
        lists = [r for r in service.audit.rows[before:] if r["action"] == "read"]
        resolved = [
            c.get(f"/api/citations/{quote(x, safe='')}").json()["row"] for x in both["citations"]
        ]
    assert "共1位" in both["answer"]
    assert "P1" in both["answer"]
    assert "P2" not in both["answer"] + hba1c["answer"]
    assert "E11.9" in both["answer"]
    # P1's newest HbA1c above 6 is R2 (6.8, or 6.5 after test_assistant_http's correction),
    # not the older R1 (7.9, 90 days ago).
    assert f"{resolved[1]['value_std']:g} %" in both["answer"]
    assert "7.9" not in both["answer"]
    dx, lab = both["citations"]
    assert dx.startswith(f"{service.tables.diagnosis.name}@")
    assert lab.startswith(f"{service.tables.lab_result.name}@")
    assert lab.endswith("|R2")
    assert [r["patient_id"] for r in resolved] == ["P1", "P1"]
    assert "1 patient has a Hemoglobin A1c result > 6, listed by MRN" in hba1c["answer"]
    assert len(hba1c["citations"]) == 1
    # Each list read is recorded as a read of the patient it returned (pseudonymized).
    assert [r["patient_ref"] for r in lists] == [patient_ref(KEY, "P1")] * 2


def test_imaging_studies_cited_guarded_and_audited(service: Service) -> None:
    """The seed holds P1's head CT and no radiology report: the study is cited by row at
    its version and resolves (both reads audited); the nurse's reports come from the
    de-identified text (a guarded join) and the study too. (Abstention, refusal, report
    spans and the modality filter: tests/unit/serving/test_note_tools.py.)"""
    study = service.tables.imaging_study.name
    token = _session(service, "dr_a")
    before = len(service.audit.rows)
    with client(service, token) as c:
        ct = c.post("/api/ask", json={"question": "患者P1最近的CT检查"}).json()
        (citation,) = ct["citations"]
        assert citation.startswith(f"{study}@")
        assert citation.endswith(":H1|pacs|1.2.840.99.1")
        assert "CT检查（CT HEAD）" in ct["answer"]
        assert "检查号ACC1" in ct["answer"]
        resolved = c.get(f"/api/citations/{quote(citation, safe='')}")
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["row"]["accession_number"] == "ACC1"
    reads = [r for r in service.audit.rows[before:] if study in (r["target"] or "")]
    assert [r["action"] for r in reads] == ["read", "read"]  # the tool and the resolution
    assert reads[0]["patient_ref"] == patient_ref(KEY, "P1")
    with client(service, _session(service, "nurse_a")) as c:
        nurse = c.post("/api/ask", json={"question": "imaging reports for patient P1"}).json()
    assert [x.split("@")[0] for x in nurse["citations"]] == [study]
