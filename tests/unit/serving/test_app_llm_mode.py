"""``POST /api/ask`` in LLM mode, without Spark: the app over inert data stand-ins, a real
identity service, and a scripted chat model whose turns read no data. Grounded stays the
default; the response says which mode answered; a remote endpoint stops the start."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.sessions import Principal, SessionSigner
from lakehouse.settings import AssistantLLMSettings, SecuritySettings, load_settings
from serving.app import create_app
from serving.assistant.llm import ChatModel
from serving.openapi import _SchemaOnly
from tests.unit.serving.assistant_fakes import Scripted, lexicon, say

KEY = b"k" * 32
PASSWORD = "Correct-Horse-42"
QUESTION = "What can you do?"  # no test, drug or patient: neither mode reads data


def _client(tmp_path: Path, model: ChatModel | None, **llm: Any) -> TestClient:
    cfg = load_settings(home=tmp_path, data_dir=tmp_path / "var")
    cfg.llm = AssistantLLMSettings(**llm)
    audit = MemoryAuditLog()
    identity = IdentityService(
        tmp_path / "accounts.db", audit, SecuritySettings(), SessionSigner(KEY, 900)
    )
    identity.create_account(
        Principal("root", "admin"), "dr_a", PASSWORD, ("clinician",), department="A"
    )
    inert = cast(Any, _SchemaOnly())
    app = create_app(
        inert, cfg, identity=identity, access=inert, lexicon=lexicon(), chat_model=model
    )
    client = TestClient(app, base_url="https://testserver")
    token = client.post("/api/login", json={"username": "dr_a", "password": PASSWORD})
    client.headers["Authorization"] = f"Bearer {token.json()['token']}"
    return client


def _ask(client: TestClient) -> dict[str, Any]:
    r = client.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    return cast(dict[str, Any], r.json())


class _Switch:
    """The app's chat model, scripted per test (one app for the module: sign-in is slow)."""

    model: ChatModel = Scripted()

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.chat(*args, **kwargs)


@pytest.fixture(scope="module")
def llm_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return _client(tmp_path_factory.mktemp("llm"), _Switch())


def test_grounded_is_the_default(tmp_path: Path) -> None:
    out = _ask(_client(tmp_path, None))
    assert out["mode"] == "grounded"
    assert "fallback" not in out


def test_the_agent_answers_when_a_model_is_configured(llm_client: TestClient) -> None:
    _Switch.model = Scripted(say("I answer from lab results and orders."))
    out = _ask(llm_client)
    assert (out["mode"], out["answer"], out["citations"]) == (
        "llm",
        "I answer from lab results and orders.",
        [],
    )


def test_a_model_that_is_down_answers_grounded_with_the_code(llm_client: TestClient) -> None:
    down = error(
        ErrorCode.LLM_UNREACHABLE, url="http://127.0.0.1:9/v1", reason="timeout", attempts=2
    )
    _Switch.model = Scripted(down)
    out = _ask(llm_client)
    assert (out["mode"], out["fallback"]) == ("grounded-fallback", "LH-LLM-001")
    assert out["answer"].startswith("I can answer questions about a patient's lab results")


def test_a_remote_endpoint_stops_the_service_from_starting(tmp_path: Path) -> None:
    cfg = load_settings(home=tmp_path, data_dir=tmp_path / "var")
    cfg.llm = AssistantLLMSettings(endpoint="http://8.8.8.8:8000/v1")
    inert = cast(Any, _SchemaOnly())
    with pytest.raises(LakehouseError) as exc:
        create_app(inert, cfg, identity=inert, access=inert, lexicon=lexicon())
    assert exc.value.code is ErrorCode.LLM_ENDPOINT_NOT_ALLOWED
