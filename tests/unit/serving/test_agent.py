"""The LLM agent's logic with a scripted chat model over a DataTools-shaped fake (no Spark):
tool calls through the lexicon, references turned into citations and verified, and the
grounded fallback when the answer cannot be verified or the model cannot be reached."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.settings import AssistantLLMSettings, Settings
from serving.assistant.agent import split_sentences
from serving.assistant.evaluate import EvalCase, EvalReport, Evaluator
from serving.assistant.llm import (
    ChatMessage,
    OpenAICompatibleChat,
    check_endpoint,
    parse_completion,
    read_api_key,
)
from tests.unit.serving.assistant_fakes import (
    GLU,
    HBA1C,
    WHO,
    FakeTools,
    Scripted,
    agent,
    call,
    lab,
    say,
)

OLD = lab("R1", "P1", HBA1C, 6.4, "%", datetime(2026, 5, 2, 8, 15))
NEW = lab("R2", "P1", HBA1C, 7.2, "%", datetime(2026, 11, 20, 9, 30))
SUGAR = lab("R3", "P1", GLU, 6.1, "mmol/L", datetime(2026, 4, 1, 7, 0))


def _tools() -> FakeTools:
    return FakeTools({"P1": [OLD, NEW, SUGAR]})


def test_a_tool_call_then_a_cited_answer_in_chinese() -> None:
    tools = _tools()
    model = Scripted(
        call("labs", patient="P1", tests=["糖化血红蛋白"], latest=True),
        say("该患者最近一次糖化血红蛋白为7.2 %，采集时间2026-11-20 09:30 [1]。"),
    )
    answer = agent(tools, model).ask(WHO, "患者P1最近一次糖化血红蛋白是多少？")
    assert (answer.mode, answer.fallback, answer.refused) == ("llm", None, False)
    assert answer.citations == [str(NEW.citation)]
    assert answer.text == "该患者最近一次糖化血红蛋白为7.2 %，采集时间2026-11-20 09:30。"
    # The name went through the lexicon to LOINC; the model saw one row tagged [1],
    # without the patient id or record keys.
    assert tools.calls == [("labs", "P1", ("4548-4",))]
    result = json.loads(model.seen[1][-1].content or "")
    assert result == {
        "rows": [
            {
                "ref": "[1]",
                "name": "糖化血红蛋白",
                "test_standard_code": "4548-4",
                "value_std": 7.2,
                "unit_std": "%",
                "value_as_number": 7.2,
                "unit_source": "%",
                "value_source": "7.2",
                "reference_range_source": "4-6",
                "abnormal_flag": "H",
                "collected_at": "2026-11-20 09:30",
            }
        ]
    }
    assert model.seen[1][-1].tool_call_id == "c_labs"


def test_english_references_after_the_full_stop_and_two_rows() -> None:
    model = Scripted(
        call("labs", patient="P1", tests=["HbA1c", "4548-4", "glucose"]),
        say(
            "HbA1c was 7.2 % on 2026-11-20 and 6.4 % on 2026-05-02. [1, 2] "
            "Glucose was 6.1 mmol/L [3]."
        ),
    )
    answer = agent(_tools(), model).ask(WHO, "HbA1c and glucose of MRN P1?")
    assert answer.mode == "llm"
    assert [s.citations for s in answer.sentences] == [
        (str(NEW.citation), str(OLD.citation)),
        (str(SUGAR.citation),),
    ]
    assert answer.sentences[0].text == "HbA1c was 7.2 % on 2026-11-20 and 6.4 % on 2026-05-02."


def test_no_rows_and_an_answer_that_says_so() -> None:
    model = Scripted(
        call("labs", patient="P2", tests=["HbA1c"]),
        say("The data does not contain any HbA1c for this patient."),
    )
    answer = agent(_tools(), model).ask(WHO, "latest HbA1c of MRN P2?")
    assert (answer.mode, answer.citations) == ("llm", [])


def test_unknown_names_are_reported_to_the_model_without_a_read() -> None:
    tools = _tools()
    model = Scripted(
        call("labs", patient="P1", tests=["unobtainium"]),
        say("The data has no such test."),
    )
    agent(tools, model).ask(WHO, "unobtainium level of MRN P1?")
    assert tools.calls == []
    assert json.loads(model.seen[1][-1].content or "") == {
        "rows": [],
        "unresolved": ["unobtainium"],
    }


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("The latest HbA1c is 7.2 %.", "a sentence with a number cites no record"),
        ("The latest HbA1c is 8.1 % [1].", "a number is not in the records it cites"),
        ("The latest HbA1c is 7.2 %, collected 2026-11-21 [1].", "a date is not"),
        ("The latest HbA1c is 7.2 % [7].", "a reference that no tool returned"),
        ("The patient is doing fine.", "cites none"),
    ],
)
def test_an_unverifiable_answer_falls_back_to_the_grounded_planner(
    text: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = Scripted(call("labs", patient="P1", tests=["HbA1c"], latest=True), say(text))
    answer = agent(_tools(), model).ask(WHO, "latest HbA1c of MRN P1?")
    assert (answer.mode, answer.fallback) == ("grounded-fallback", "LH-LLM-004")
    # The planner's own answer: the true value, cited.
    assert answer.citations == [str(NEW.citation)]
    assert "7.2 %" in answer.text
    assert why in caplog.text  # the reason is logged (a catalogued message, no values)
    assert "7.2" not in caplog.text


def test_a_patient_outside_the_scope_is_refused_as_the_planner_refuses() -> None:
    tools = _tools()
    tools.denied.add("P9")
    model = Scripted(call("labs", patient="P9", tests=["HbA1c"]))
    answer = agent(tools, model).ask(WHO, "最近一次糖化血红蛋白？", patient="P9")
    grounded = agent(tools, Scripted()).fallback.ask(WHO, "最近一次糖化血红蛋白？", patient="P9")
    assert (answer.refused, answer.code, answer.citations) == (True, "LH-SEC-006", [])
    assert answer.text == grounded.text
    assert grounded.refused
    assert model.replies == []  # nothing more was asked of the model


def test_the_chart_patient_is_used_when_the_model_names_none() -> None:
    tools = _tools()
    model = Scripted(call("labs", tests=["血糖"]), say("血糖为6.1 mmol/L [1]。"))
    answer = agent(tools, model).ask(WHO, "该患者的血糖？", patient="P1")
    assert answer.mode == "llm"
    assert tools.calls == [("labs", "P1", ("2345-7",))]
    assert "P1" in (model.seen[0][0].content or "")


def test_max_steps_exhausted_falls_back() -> None:
    model = Scripted(*[call("labs", patient="P1") for _ in range(3)])
    answer = agent(_tools(), model, max_steps=2).ask(WHO, "latest HbA1c of MRN P1?")
    assert (answer.mode, answer.fallback) == ("grounded-fallback", "LH-LLM-005")
    assert answer.citations == [str(NEW.citation)]


def test_since_narrows_the_read() -> None:
    tools = _tools()
    model = Scripted(
        call("labs", patient="P1", tests=["HbA1c"], since="2026-06-01T00:00:00Z"),
        say("HbA1c was 7.2 % [1]."),
    )
    answer = agent(tools, model).ask(WHO, "HbA1c of MRN P1 since June?")
    assert answer.citations == [str(NEW.citation)]


def test_bad_tool_arguments_go_back_to_the_model() -> None:
    model = Scripted(
        call("labs", patient="P1", since="last week"),
        call("nonsense"),
        say("I cannot tell."),
    )
    answer = agent(_tools(), model).ask(WHO, "HbA1c of MRN P1?")
    assert answer.mode == "llm"
    assert json.loads(model.seen[1][-1].content or "") == {
        "error": "since must be a date YYYY-MM-DD"
    }
    assert "unknown tool" in (model.seen[2][-1].content or "")


def test_an_unreachable_model_falls_back_with_its_code() -> None:
    down = error(ErrorCode.LLM_UNREACHABLE, url="http://127.0.0.1:9", reason="x", attempts=2)
    answer = agent(_tools(), Scripted(down)).ask(WHO, "latest HbA1c of MRN P1?")
    assert (answer.mode, answer.fallback) == ("grounded-fallback", "LH-LLM-001")
    assert answer.citations == [str(NEW.citation)]


def test_the_client_gives_up_after_its_retries_on_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = OpenAICompatibleChat(
        f"http://127.0.0.1:{port}/v1", "m", timeout_s=2, retries=1, backoff_s=0.01
    )
    with pytest.raises(LakehouseError) as exc:
        client.chat([ChatMessage("user", "secret question P1")])
    assert exc.value.code is ErrorCode.LLM_UNREACHABLE
    assert "2 attempt" in str(exc.value)
    assert "secret" not in str(exc.value)
    answer = agent(_tools(), client).ask(WHO, "latest HbA1c of MRN P1?")
    assert (answer.mode, answer.fallback) == ("grounded-fallback", "LH-LLM-001")


def test_the_client_retries_5xx_sends_the_key_and_parses_tool_calls() -> None:
    seen: list[httpx.Request] = []
    statuses = [503, 200]

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0)
        if status != 200:
            return httpx.Response(status, text="overloaded: <prompt echoed here>")
        fn = {"name": "labs", "arguments": '{"patient": "P1"}'}
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "x", "function": fn}],
        }
        return httpx.Response(200, json={"choices": [{"message": message}]})

    client = OpenAICompatibleChat(
        "http://127.0.0.1:8000/v1",
        "clinical-assistant",
        api_key="k-123",
        backoff_s=0.0,
        transport=httpx.MockTransport(handle),
    )
    reply = client.chat([ChatMessage("user", "q")], [{"type": "function"}])
    assert reply.tool_calls[0].name == "labs"
    assert reply.tool_calls[0].arguments == {"patient": "P1"}
    assert len(seen) == 2
    assert seen[1].headers["authorization"] == "Bearer k-123"
    body = json.loads(seen[1].content)
    assert (body["temperature"], body["tool_choice"], body["model"]) == (
        0,
        "auto",
        "clinical-assistant",
    )
    assert "k-123" not in repr(client)
    # A 4xx is not retried and its body (which may echo the prompt) is not read out.
    statuses[:] = [400]
    with pytest.raises(LakehouseError) as exc:
        client.chat([ChatMessage("user", "q")])
    assert exc.value.code is ErrorCode.LLM_BAD_RESPONSE
    assert "prompt" not in str(exc.value)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"choices": []},
        {"choices": [{"message": {"content": ""}}]},
        {"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}}]},
        {
            "choices": [
                {"message": {"tool_calls": [{"function": {"name": "f", "arguments": "[]"}}]}}
            ]
        },
    ],
)
def test_malformed_completions_are_bad_responses(data: dict[str, object]) -> None:
    with pytest.raises(LakehouseError) as exc:
        parse_completion(data)
    assert exc.value.code is ErrorCode.LLM_BAD_RESPONSE


def test_only_loopback_and_private_endpoints_unless_allowed() -> None:
    for ok in ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "https://10.2.3.4/v1",
               "http://[::1]:8000/v1", "http://192.168.1.20:8000/v1"):  # fmt: skip
        check_endpoint(ok)
    for bad in ("http://8.8.8.8/v1", "ftp://127.0.0.1/v1", "http://u:p@127.0.0.1/v1",
                "http://0.0.0.0:8000/v1"):  # fmt: skip
        with pytest.raises(LakehouseError) as exc:
            check_endpoint(bad)
        assert exc.value.code is ErrorCode.LLM_ENDPOINT_NOT_ALLOWED
        assert "p@" not in str(exc.value)
    check_endpoint("https://8.8.8.8/v1", allow_remote=True)
    with pytest.raises(LakehouseError):
        OpenAICompatibleChat.from_settings(AssistantLLMSettings(endpoint="http://1.1.1.1/v1"))


def test_settings_default_to_grounded_mode_and_read_the_key_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().llm.endpoint is None
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    cfg = AssistantLLMSettings(endpoint="http://127.0.0.1:8000/v1", api_key_file=key)
    assert read_api_key(cfg) == "s3cret"
    assert OpenAICompatibleChat.from_settings(cfg).api_key == "s3cret"
    monkeypatch.setenv("LH_TEST_LLM_KEY", "from-env")
    assert read_api_key(AssistantLLMSettings(api_key_env="LH_TEST_LLM_KEY")) == "from-env"
    with pytest.raises(LakehouseError) as exc:
        read_api_key(AssistantLLMSettings(api_key_file=tmp_path / "missing"))
    assert exc.value.code is ErrorCode.CONFIG_INVALID


def test_sentences_keep_their_trailing_references() -> None:
    assert split_sentences("A is 7.2 %. [1] B is 3 [2]。C.") == [
        "A is 7.2 %. [1]",
        "B is 3 [2]。",
        "C.",
    ]


def test_the_evaluation_scores_the_agent_and_counts_its_fallbacks() -> None:
    case = EvalCase(
        "Q1", "answerable", "value", "en", "latest HbA1c?", "H1", "P1", value=7.2, date="2026-11-20"
    )
    tools = _tools()
    good = Scripted(
        call("labs", tests=["HbA1c"], latest=True),
        say("The latest HbA1c is 7.2 %, collected 2026-11-20 09:30 [1]."),
    )
    bad = Scripted(call("labs", tests=["HbA1c"], latest=True), say("It is 7.9 % [1]."))
    results = [
        Evaluator(agent(tools, model), cast(Any, tools)).score(case) for model in (good, bad)
    ]
    assert [(r.correct, r.mode, r.precise_citations) for r in results] == [
        (True, "llm", 1),
        (True, "grounded-fallback", 1),
    ]
    metrics = EvalReport(results).metrics()
    assert (metrics["llm_answers"], metrics["llm_fallbacks"]) == (1, 1)
