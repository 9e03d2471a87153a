"""Knowledge-base search over the real service: sign-in, folder permissions, audit.

The package's service (conftest.py) runs with the test settings, so its knowledge base is
``<data_dir>/knowledge``; the documents are written before this module's first request
(the service syncs the tree on its first knowledge-base request). No Spark table is added.
"""

from __future__ import annotations

import pytest

from lakehouse.settings import Settings
from tests.integration.serving.conftest import Service, client

pytestmark = pytest.mark.spark

FILES = {
    "sops/_access.yaml": "roles: [clinician, nurse]\n",
    "sops/ward-a/_access.yaml": "departments: [A]\n",
    "sops/ward-a/hba1c.md": "# 糖化血红蛋白复查\n\n门诊患者每三个月复查糖化血红蛋白（HbA1c）。\n",
    "sops/ward-b/_access.yaml": "departments: [B]\n",
    "sops/ward-b/secret.md": "# Ward B\n\n病区B糖化血红蛋白 <b>vasopressin</b> protocol.\n",
}


@pytest.fixture(scope="module")
def kb_service(service: Service, settings: Settings) -> Service:
    root = settings.data_dir / "knowledge"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return service


def test_search_tree_and_doc_respect_folders(kb_service: Service, token: str) -> None:
    with client(kb_service, token) as c:
        r = c.get("/api/kb/search", params={"q": "糖化血红蛋白", "limit": 50})
        assert r.status_code == 200, r.text
        body = r.json()
        paths = [h["path"] for h in body["hits"]]
        assert paths[0] == "sops/ward-a/hba1c.md"
        assert "sops/ward-b/secret.md" not in paths
        assert body["total"] == len(paths)  # nothing unreadable counted
        hit = body["hits"][0]
        assert "<mark>糖化血红蛋白</mark>" in hit["snippet"]
        doc = c.get("/api/kb/doc", params={"path": hit["path"]}).json()
        assert [doc["text"][s:e] for s, e in hit["spans"]] == ["糖化血红蛋白"] * 2

        assert c.get("/api/kb/search", params={"q": "vasopressin"}).json()["total"] == 0
        denied = c.get("/api/kb/doc", params={"path": "sops/ward-b/secret.md"})
        assert denied.status_code == 404
        assert denied.json()["error"]["code"] == "LH-KNB-002"
        bad = c.get("/api/kb/doc", params={"path": "../secrets/session.key"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "LH-KNB-001"

        tree = c.get("/api/kb/tree").json()
        sops = next(f for f in tree["folders"] if f["name"] == "sops")
        assert [f["name"] for f in sops["folders"]] == ["ward-a"]
        assert any(f["name"] == "project" for f in tree["folders"])  # project docs: everyone

    events = [r for r in kb_service.audit.rows if str(r["target"]).startswith("kb:")]
    searches = [e for e in events if e["target"] == "kb:search"]
    assert searches
    assert searches[0]["row_count"] == len(paths)
    assert all(
        "糖化" not in str(e["detail"]) and "vasopressin" not in str(e["detail"]) for e in searches
    )
    assert any(e["target"] == "kb:sops/ward-a/hba1c.md" for e in events)


def test_kb_needs_a_session(kb_service: Service) -> None:
    with client(kb_service) as c:
        for path in ("/api/kb/search?q=x", "/api/kb/tree", "/api/kb/doc?path=sops/x.md"):
            r = c.get(path)
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "LH-SEC-005"


def test_the_assistant_answers_from_the_knowledge_base_with_resolvable_spans(
    kb_service: Service, token: str
) -> None:
    from urllib.parse import quote

    with client(kb_service, token) as c:
        r = c.post("/api/ask", json={"question": "糖化血红蛋白复查的流程是什么？"})
        assert r.status_code == 200, r.text
        body = r.json()
        kb = [x for x in body["citations"] if x.startswith("kb:")]
        assert kb, body
        assert kb[0].startswith("kb:sops/ward-a/hba1c.md:")
        assert "病区B" not in body["answer"]
        assert "ward-b" not in body["answer"]
        cited = c.get("/api/citations/" + quote(kb[0], safe="")).json()
        assert cited["path"] == "sops/ward-a/hba1c.md"
        assert "糖化血红蛋白" in cited["span_text"]
        assert " ".join(cited["span_text"].split()) in body["answer"]
        # the span checked against the document: past its end, or in a folder dr_a may
        # not read, the citation resolves to nothing (alike)
        for forged in ("kb:sops/ward-a/hba1c.md:0-99999", "kb:sops/ward-b/secret.md:0-10"):
            r = c.get("/api/citations/" + quote(forged, safe=""))
            assert r.status_code == 404, forged
            assert r.json()["error"]["code"] == "LH-AKB-001"
        bad = c.get("/api/citations/" + quote("kb:../x.md:0-5", safe=""))
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "LH-SRV-002"
