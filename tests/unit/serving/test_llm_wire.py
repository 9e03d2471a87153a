"""The wire: a real OpenAI-compatible server process (a tiny random-weight model built at
start, serving/assistant/tiny_llm.py) spoken to over HTTP by the client and the agent."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from serving.assistant.agent import TOOL_SCHEMAS
from serving.assistant.llm import ChatMessage, OpenAICompatibleChat
from tests.unit.serving.assistant_fakes import HBA1C, WHO, FakeTools, agent, lab

MODEL = "tiny-random"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.assistant.tiny_llm", "--port", str(port), "--model", MODEL],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the tiny model server exited: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the tiny model server did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_server_lists_its_model_and_constrains_tool_calls_to_the_schema(server: str) -> None:
    client = OpenAICompatibleChat(server, MODEL, timeout_s=30, retries=0)
    assert client.models() == [MODEL]
    messages = [ChatMessage("user", "latest HbA1c of MRN P1?")]
    reply = client.chat(messages, TOOL_SCHEMAS, tool_choice="required")
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    schema = next(t["function"] for t in TOOL_SCHEMAS if t["function"]["name"] == call.name)
    required = schema["parameters"].get("required") or list(schema["parameters"]["properties"])[:1]
    assert sorted(call.arguments) == sorted(required)
    assert all(isinstance(v, str) and v for v in call.arguments.values())
    named = client.chat(
        messages, TOOL_SCHEMAS, tool_choice={"type": "function", "function": {"name": "diagnoses"}}
    )
    assert named.tool_calls[0].name == "diagnoses"
    text = client.chat(messages, TOOL_SCHEMAS, tool_choice="none")
    assert text.content
    assert not text.tool_calls
    # Deterministic: temperature 0 whatever the model's weights.
    again = client.chat(messages, TOOL_SCHEMAS, tool_choice="required")
    assert json.dumps(again.tool_calls[0].arguments) == json.dumps(call.arguments)


def test_the_agent_calls_a_tool_over_http_and_falls_back_on_the_random_answer(
    server: str,
) -> None:
    # Every patient id the random model invents has this row, so its tool call reads data.
    tools = FakeTools({"P1": [lab("R1", "P1", HBA1C, 7.2, "%", datetime(2026, 11, 20, 9, 30))]})
    tools.any_patient = True
    model = OpenAICompatibleChat(server, MODEL, timeout_s=30, retries=0)
    answer = agent(tools, model).ask(WHO, "What is the latest HbA1c of MRN P1?")
    assert len(tools.calls) >= 1  # the model's tool call ran through the tools
    # Random text cannot cite the rows it was given: the grounded planner answered.
    assert (answer.mode, answer.fallback) == ("grounded-fallback", "LH-LLM-004")
    assert answer.citations == ["silver.lab_result@3:H1|lis|R1"]
    assert "7.2 %" in answer.text


def test_an_unknown_model_name_is_a_bad_response(server: str) -> None:
    tools = FakeTools()
    answer = agent(tools, OpenAICompatibleChat(server, "no-such-model", retries=0)).ask(
        WHO, "latest HbA1c of MRN P1?"
    )
    assert (answer.mode, answer.fallback) == ("grounded-fallback", "LH-LLM-002")
