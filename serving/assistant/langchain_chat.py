"""Any LangChain chat model behind the assistant's :class:`ChatModel` (extra ``agents``).

:class:`LangChainChat` lets the verified agent loop (:class:`~serving.assistant.agent.
ToolAgent`) drive a LangChain chat model (``ChatOpenAI`` on a local server, ``ChatOllama``,
a Hugging Face pipeline, ...): messages and the OpenAI tool schemas go through
``bind_tools``; the ``AIMessage`` comes back as a :class:`ChatMessage`. The loop, the
governed tools and the citation check stay the agent's (docs/adr/0020): LangChain supplies
the model, never the answer's verification.

Patient data must not leave through tracing either: with LangSmith tracing switched on in
the environment (``LANGSMITH_TRACING`` / ``LANGCHAIN_TRACING_V2``) the adapter refuses to
start (``LH-LLM-003``), and each call runs with no callbacks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from lakehouse.errors import ErrorCode, LakehouseError, error
from serving.assistant.llm import ChatMessage, ToolCall

_TRACING = (
    "LANGSMITH_TRACING",
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_TRACING_V2",
    "LANGCHAIN_TRACING",
)


class LangChainChat:
    """:class:`ChatModel` over a LangChain ``BaseChatModel`` that supports ``bind_tools``."""

    def __init__(self, model: BaseChatModel) -> None:
        on = [v for v in _TRACING if os.environ.get(v, "").strip().lower() in ("1", "true", "yes")]
        if on:
            raise error(
                ErrorCode.LLM_ENDPOINT_NOT_ALLOWED,
                url="langsmith",
                reason=f"LangSmith tracing is on ({on[0]}): it would send patient data out",
            )
        self.model = model
        self.name = f"langchain:{type(model).__name__}"

    def chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]] = (),
        *,
        tool_choice: str | dict[str, Any] | None = None,
    ) -> ChatMessage:
        runnable: Any = self.model
        if tools:
            choice = (
                str(tool_choice.get("function", {}).get("name"))
                if isinstance(tool_choice, dict)
                else tool_choice
            )  # LangChain names a forced tool by its name
            runnable = self.model.bind_tools(list(tools), tool_choice=choice)
        try:
            out = runnable.invoke([_to_langchain(m) for m in messages], config={"callbacks": []})
        except LakehouseError:
            raise
        except Exception as exc:  # the model's own errors: by type only (may echo the prompt)
            raise error(
                ErrorCode.LLM_UNREACHABLE, url=self.name, reason=type(exc).__name__, attempts=1
            ) from exc
        if not isinstance(out, AIMessage):
            raise error(ErrorCode.LLM_BAD_RESPONSE, reason="not an AIMessage")
        return _from_langchain(out)


def _to_langchain(m: ChatMessage) -> BaseMessage:
    if m.role == "system":
        return SystemMessage(m.content or "")
    if m.role == "user":
        return HumanMessage(m.content or "")
    if m.role == "tool":
        return ToolMessage(m.content or "", tool_call_id=m.tool_call_id or "")
    return AIMessage(
        m.content or "",
        tool_calls=[{"name": c.name, "args": c.arguments, "id": c.id} for c in m.tool_calls],
    )


def _from_langchain(out: AIMessage) -> ChatMessage:
    if out.invalid_tool_calls:
        raise error(ErrorCode.LLM_BAD_RESPONSE, reason="tool call arguments are not JSON")
    calls = tuple(
        ToolCall(c.get("id") or f"call_{i}", c["name"], dict(c.get("args") or {}))
        for i, c in enumerate(out.tool_calls)
    )
    content = out.content
    if isinstance(content, list):  # content blocks: keep the text ones
        content = "".join(
            b if isinstance(b, str) else str(b.get("text", ""))
            for b in content
            if isinstance(b, str) or b.get("type") == "text"
        )
    if not calls and not content.strip():
        raise error(ErrorCode.LLM_BAD_RESPONSE, reason="neither text nor tool calls")
    return ChatMessage("assistant", content or None, calls)


__all__ = ["LangChainChat"]
