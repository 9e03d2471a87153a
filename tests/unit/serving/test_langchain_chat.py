"""The LangChain adapter: a LangChain chat model (a scripted one) drives the verified agent
loop; LangSmith tracing in the environment stops it (patient data would leave)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from lakehouse.errors import ErrorCode, LakehouseError
from serving.assistant.agent import TOOL_SCHEMAS
from serving.assistant.langchain_chat import LangChainChat
from tests.unit.serving.assistant_fakes import HBA1C, WHO, FakeTools, agent, lab

ROW = lab("R2", "P1", HBA1C, 7.2, "%", datetime(2026, 11, 20, 9, 30))


class ScriptedLangChain(BaseChatModel):
    """A LangChain chat model replying from a script; keeps what it was sent and bound."""

    script: list[AIMessage]
    seen: list[list[BaseMessage]]
    bound: list[tuple[int, str | None]]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **_: Any) -> Any:
        self.bound.append((len(tools), tool_choice))
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.script.pop(0))])


def test_a_langchain_model_drives_the_verified_loop() -> None:
    model = ScriptedLangChain(
        script=[
            AIMessage(
                "",
                tool_calls=[
                    {"name": "labs", "args": {"patient": "P1", "tests": ["HbA1c"]}, "id": "t1"}
                ],
            ),
            AIMessage("The latest HbA1c is 7.2 % [1]."),
        ],
        seen=[],
        bound=[],
    )
    tools = FakeTools({"P1": [ROW]})
    answer = agent(tools, LangChainChat(model)).ask(WHO, "latest HbA1c of MRN P1?")
    assert (answer.mode, answer.citations) == ("llm", [str(ROW.citation)])
    assert model.bound == [(len(TOOL_SCHEMAS), "auto")] * 2
    tool_message = model.seen[1][-1]
    assert isinstance(tool_message, ToolMessage)
    assert tool_message.tool_call_id == "t1"
    assert '"ref": "[1]"' in str(tool_message.content)


def test_an_unverifiable_langchain_answer_falls_back() -> None:
    model = ScriptedLangChain(
        script=[
            AIMessage("", tool_calls=[{"name": "labs", "args": {"patient": "P1"}, "id": "t1"}]),
            AIMessage("The latest HbA1c is 9.9 % [1]."),
        ],
        seen=[],
        bound=[],
    )
    answer = agent(FakeTools({"P1": [ROW]}), LangChainChat(model)).ask(
        WHO, "latest HbA1c of MRN P1?"
    )
    assert (answer.mode, answer.fallback) == ("grounded-fallback", "LH-LLM-004")


def test_langsmith_tracing_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    with pytest.raises(LakehouseError) as exc:
        LangChainChat(ScriptedLangChain(script=[], seen=[], bound=[]))
    assert exc.value.code is ErrorCode.LLM_ENDPOINT_NOT_ALLOWED
