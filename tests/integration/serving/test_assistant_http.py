"""The assistant end to end over HTTP: sign-in and 401s, cited answers in Chinese and
English whose citations resolve to the row at the cited Delta version, abstention without
citations, and another department's patient refused and audited."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lakehouse.governance.audit import patient_ref
from tests.integration.serving.conftest import KEY, PASSWORD, Service, client

pytestmark = pytest.mark.spark


def _ask(service: Service, token: str, question: str, **extra: Any) -> dict[str, Any]:
    with client(service, token) as c:
        r = c.post("/api/ask", json={"question": question, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _resolve(service: Service, token: str, citation: str) -> httpx.Response:
    with client(service, token) as c:
        return c.get(f"/api/citations/{quote(citation, safe='')}")


def test_sign_in_and_every_data_endpoint_needs_a_session(service: Service) -> None:
    with client(service) as c:
        for method, path in (("GET", "/api/me"), ("POST", "/api/ask"), ("GET", "/api/citations/x")):
            r = c.request(method, path, json={"question": "HbA1c of MRN P1"})
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "LH-SEC-005"
        r = c.get("/api/me", headers={"Authorization": "Bearer forged.token"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "LH-SEC-005")
        r = c.post("/api/login", json={"username": "dr_a", "password": "Wrong-Password-1"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "LH-SEC-001")
        assert "Traceback" not in r.text
        r = c.post("/api/login", json={"username": "dr_a"})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "LH-SRV-001")
        r = c.post("/api/login", json={"username": "dr_a", "password": PASSWORD})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=strict"))
        session = r.cookies["lh_session"]
        me = c.get("/api/me", headers={"Cookie": f"lh_session={session}"})
        assert me.status_code == 200
        assert me.json() == {
            "username": "dr_a",
            "role": "clinician",
            "department": "A",
            "institutions": ["H1"],
        }


def test_latest_hba1c_in_chinese_and_english_cites_the_row(service: Service, token: str) -> None:
    zh = _ask(service, token, "患者P1最近一次糖化血红蛋白是多少？")
    en = _ask(service, token, "What is the latest HbA1c of MRN P1?")
    page = _ask(service, token, "该患者最近一次糖化血红蛋白是多少？", patient="P1")
    visit = _ask(service, token, "就诊号V1的患者最新糖化血红蛋白")
    named = _ask(service, token, "名叫张三的患者最新糖化血红蛋白")  # found by name in scope
    # The same patient by the pinyin of the name, and in traditional characters.
    spelled = _ask(service, token, "What is the latest HbA1c of the patient named Zhang San?")
    traditional = _ask(service, token, "名叫張三的患者最新糖化血红蛋白")
    lab = service.tables.lab_result.name
    for body in (zh, en, page, visit, named, spelled, traditional):
        assert body["refused"] is False
        assert len(body["citations"]) == 1
        assert body["citations"][0].startswith(f"{lab}@")
        assert body["citations"][0].endswith(":H1|lis|R2")
        assert "6.8 %" in body["answer"]
        for s in body["sentences"]:  # a sentence with a number cites its record
            assert not any(ch.isdigit() for ch in s["text"]) or s["citations"]
    assert "糖化血红蛋白" in zh["answer"]
    assert "Hemoglobin A1c" in en["answer"]

    cited = zh["citations"][0]
    r = _resolve(service, token, cited)
    assert r.status_code == 200, r.text
    row = r.json()["row"]
    assert (row["result_id"], row["value_std"], row["patient_id"]) == ("R2", 6.8, "P1")

    # A correction makes a new version; the citation still shows the row it cited.
    service.spark.sql(f"UPDATE {lab} SET value_std = 6.5 WHERE result_id = 'R2'")
    assert _resolve(service, token, cited).json()["row"]["value_std"] == 6.8
    again = _ask(service, token, "latest HbA1c of MRN P1")
    assert "6.5 %" in again["answer"]
    assert again["citations"][0] != cited
    assert _resolve(service, token, again["citations"][0]).json()["row"]["value_std"] == 6.5


def test_no_data_abstains_without_citations(service: Service, token: str) -> None:
    none_zh = _ask(service, token, "患者P1的白细胞计数是多少？")
    assert (none_zh["citations"], none_zh["refused"]) == ([], False)
    assert "数据中没有" in none_zh["answer"]
    window = _ask(service, token, "glucose of MRN P1 in the last 30 days")
    assert window["citations"] == []
    assert "does not contain" in window["answer"]
    assert not any(ch.isdigit() for ch in window["answer"])
    older = _ask(service, token, "glucose of MRN P1 in the last 90 days")
    assert len(older["citations"]) == 1
    assert "7.2 mmol/L" in older["answer"]
    meds = _ask(service, token, "患者P1最近的用药")
    assert len(meds["citations"]) == 1
    assert "二甲双胍" in meds["answer"]  # the drug's Chinese name, from the terminology


def test_other_department_patient_is_refused_and_audited(service: Service, token: str) -> None:
    body = _ask(service, token, "What is the latest HbA1c of MRN P2?")
    assert body["refused"] is True
    assert body["code"] == "LH-SEC-006"
    assert body["citations"] == []
    assert "9.1" not in body["answer"]
    assert "P2" not in body["answer"]
    # By name, another department's patient is not found at all: the row filter hides it.
    by_name = _ask(service, token, "名叫李四的患者最新糖化血红蛋白")
    assert (by_name["refused"], by_name["citations"]) == (False, [])
    assert "没有您可查看的该姓名的患者" in by_name["answer"]
    spelled = _ask(service, token, "latest HbA1c of the patient named Li Si")
    assert (spelled["refused"], spelled["citations"]) == (False, [])
    assert "no patient by that name that you may see" in spelled["answer"]
    body = _ask(service, token, "What is the latest HbA1c of MRN P2?")
    last = service.audit.rows[-1]
    assert (last["action"], last["outcome"], last["actor"]) == ("access_denied", "denied", "dr_a")
    assert last["patient_ref"] == patient_ref(KEY, "P2")
    # A citation of that patient's row does not resolve for this user (and is audited).
    lab = service.tables.lab_result.name
    before = len(service.audit.rows)
    r = _resolve(service, token, f"{lab}@1:H1|lis|R4")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "LH-SRV-003")
    assert "9.1" not in r.text
    assert len(service.audit.rows) == before + 1
    future = _resolve(service, token, f"{lab}@999:H1|lis|R2")
    assert (future.status_code, future.json()["error"]["code"]) == (404, "LH-SRV-003")
    bad = _resolve(service, token, "silver.secret@1:x")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "LH-SRV-002")
