"""The clinicians' chat page in headless Chromium (Playwright), against the running service
of conftest.py: sign-in (a wrong password shows the error), a Chinese question answered
with a citation chip whose source record shows the cited value, "no data" and refusals
styled apart, the history kept by the service across a reload, the language switch,
sign-out; the security headers, no storage in the browser and no patient data in URLs.
The history store itself (one user's rows only, audited reads, fail closed) is checked
without a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakehouse.errors import LakehouseError
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.sessions import Principal
from serving.history import TARGET, ChatHistory
from tests.integration.serving.conftest import PASSWORD, Service

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HBA1C_ZH = "患者P1最近一次糖化血红蛋白是多少？"
WAIT_MS = 60_000  # an answer is a few Spark reads; generous on a busy 2-core machine


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never `playwright install`: `make browser`)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: run `make browser` (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.spark
def test_chat_page_in_chromium(service: Service, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(ignore_https_errors=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # UI steps: instant when quiet, slow on a busy CI box
    console_errors: list[str] = []
    urls: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(f"script error: {e}"))
    page.on("request", lambda r: urls.append(r.url))
    try:
        first = page.goto(service.url + "/")
        assert first is not None
        assert first.status == 200
        csp = first.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp

        # The page follows the browser's language (zh-CN) and asks to sign in.
        expect(page.locator("h1")).to_have_text("临床数据助手")
        expect(page.locator("#login-view")).to_be_visible()
        page.fill("#username", "dr_a")
        page.fill("#password", "Wrong-Password-1")
        page.click("#sign-in")
        expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
        expect(page.locator("#chat-view")).to_be_hidden()
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        expect(page.locator("#chat-view")).to_be_visible()
        expect(page.locator("#who")).to_contain_text("dr_a")

        # The answer, sentence by sentence, with a citation chip showing the source record.
        page.fill("#question", HBA1C_ZH)
        page.click("#ask")
        card = page.locator("#answers .answer").first
        expect(card).to_contain_text("糖化血红蛋白", timeout=WAIT_MS)
        expect(card).not_to_have_class(re.compile(r"refused|nodata"))
        chip = card.locator(".chip")
        expect(chip).to_have_count(1)
        found = re.search(r"(\d+\.\d+) %", card.inner_text())
        assert found, card.inner_text()
        chip.click()
        source = page.locator("#source")
        expect(source).to_be_visible()
        value = source.locator('#source-row tr[data-field="value_std"] td')
        expect(value).to_have_text(found.group(1), timeout=WAIT_MS)  # a time-travel read
        expect(source.locator(".source-table")).to_have_text(service.tables.lab_result.name)
        expect(source.locator(".source-version")).to_have_text(re.compile(r"^\d+$"))
        expect(source.locator(".source-key")).to_have_text("H1 | lis | R2")
        expect(source.locator('#source-row tr[data-field="result_id"] td')).to_have_text("R2")

        # History is the service's: it survives a reload and nothing is kept in the browser.
        reads_before = _history_reads(service)
        page.reload()
        expect(page.locator("#history-list .history-q").first).to_have_text(HBA1C_ZH)
        assert _history_reads(service) > reads_before  # listing the history is audited
        assert page.evaluate("localStorage.length + sessionStorage.length") == 0
        page.locator("#history-list .history-item").first.click()
        expect(page.locator("#answers .answer .chip")).to_have_count(1)

        # The language switch; "no data" and refusals are styled apart.
        page.click("#lang-switch")
        expect(page.locator("h1")).to_have_text("Clinical data assistant")
        page.fill("#question", "患者P1的白细胞计数是多少？")
        page.press("#question", "Enter")
        expect(page.locator("#answers .answer.nodata")).to_have_count(1, timeout=WAIT_MS)
        expect(page.locator("#answers .answer.nodata .chip")).to_have_count(0)
        page.fill("#question", "What is the latest HbA1c of MRN P2?")
        page.click("#ask")
        refused = page.locator("#answers .answer.refused")
        expect(refused).to_have_count(1, timeout=WAIT_MS)
        expect(refused.locator(".badge-refused")).to_contain_text("LH-SEC-006")

        # Sign-out clears the session cookie: a reload asks to sign in again.
        page.click("#sign-out")
        expect(page.locator("#login-view")).to_be_visible()
        page.reload()
        expect(page.locator("#login-view")).to_be_visible()
        expect(page.locator("#history-list li")).to_have_count(0)

        assert page.url == service.url + "/"
        leaked = [u for u in urls if re.search(r"P[12]\b|%E6%82%A3|Correct-Horse", u)]
        assert leaked == []  # questions, patients and passwords travel in POST bodies only
        # No CSP violation, no script error (the 401s of the signed-out page are expected).
        assert [e for e in console_errors if not e.startswith("Failed to load resource")] == []
    finally:
        context.close()


def _history_reads(service: Service) -> int:
    return sum(1 for r in service.audit.rows if r["action"] == "read" and r["target"] == TARGET)


@pytest.mark.spark
def test_history_needs_a_session_and_answers_are_not_cached(service: Service) -> None:
    with httpx.Client(base_url=service.url, verify=service.verify, timeout=30) as c:
        for method in ("GET", "DELETE"):
            r = c.request(method, "/api/history")
            assert (r.status_code, r.json()["error"]["code"]) == (401, "LH-SEC-005")
        assert r.headers["cache-control"] == "no-store"
        page = c.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert page.headers["x-frame-options"] == "DENY"
        assert "javascript" in c.get("/static/app.js").headers["content-type"]
        assert c.get("/static/../app.py").status_code == 404


def test_history_is_per_user_audited_and_fails_closed(tmp_path: Path) -> None:
    audit = MemoryAuditLog()
    store = ChatHistory(tmp_path / "history.db", audit, keep=3)
    a = Principal("dr_a", "clinician", department="A")
    b = Principal("dr_b", "clinician", department="B")
    for i in range(5):
        store.add(a, f"q{i}", None, {"answer": f"a{i}", "citations": [], "refused": False})
    store.add(b, "their question", "P2", {"answer": "x", "citations": [], "refused": False})
    assert (tmp_path / "history.db").stat().st_mode & 0o777 == 0o600

    mine = store.entries(a)
    assert [e["question"] for e in mine] == ["q4", "q3", "q2"]  # newest first, keep=3
    assert mine[0]["answer"]["answer"] == "a4"
    assert [e["question"] for e in store.entries(b)] == ["their question"]
    last = audit.rows[-1]
    assert (last["action"], last["actor"], last["target"], last["row_count"]) == (
        "read",
        "dr_b",
        TARGET,
        1,
    )

    audit.fail = True  # no audit, no history
    with pytest.raises(LakehouseError) as caught:
        store.entries(a)
    assert caught.value.code.id == "LH-SEC-009"
    with pytest.raises(LakehouseError):
        store.clear(a)
    audit.fail = False
    assert store.clear(a) == 3
    assert store.entries(a) == []
    assert len(store.entries(b)) == 1
    assert audit.rows[-3]["action"] == "admin"
