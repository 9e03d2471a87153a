"""The assistant's language model: one interface, the OpenAI-compatible chat API.

:class:`ChatModel` is what the agent (:mod:`serving.assistant.agent`) talks to: messages and
tool schemas in, one assistant message with text and/or tool calls out. The production
implementation, :class:`OpenAICompatibleChat`, speaks ``POST {endpoint}/chat/completions``
over httpx to vLLM (``infra/vllm``) or any local OpenAI-compatible server, at temperature 0,
with a timeout and bounded retries on 5xx and connection errors. Tests pass a scripted
model instead.

Patient data goes to this model, so the endpoint must be a loopback or private-network
address unless ``llm.allow_remote`` says otherwise (``LH-LLM-003``). Nothing of a message
is ever logged or put in an error: only status codes, attempt counts and fixed reasons.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import AssistantLLMSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat: system, user, assistant (text and/or tool calls) or tool."""

    role: str
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": json.dumps(c.arguments, ensure_ascii=False),
                    },
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class ChatModel(Protocol):
    """A chat model with tool calling (OpenAI semantics)."""

    def chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]] = (),
        *,
        tool_choice: str | dict[str, Any] | None = None,
    ) -> ChatMessage:
        """The assistant's next message (``LH-LLM-001``/``-002`` when there is none)."""
        ...


@dataclass
class OpenAICompatibleChat:
    """:class:`ChatModel` over an OpenAI-compatible ``/chat/completions`` endpoint."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    retries: int = 1
    max_tokens: int = 512
    backoff_s: float = 0.25
    transport: httpx.BaseTransport | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, cfg: AssistantLLMSettings) -> OpenAICompatibleChat:
        """The client of ``cfg.endpoint`` after the network check (``LH-LLM-003``)."""
        if cfg.endpoint is None:
            raise error(ErrorCode.CONFIG_INVALID, setting="llm.endpoint", reason="not set")
        check_endpoint(cfg.endpoint, allow_remote=cfg.allow_remote)
        return cls(
            cfg.endpoint.rstrip("/"),
            cfg.model,
            api_key=read_api_key(cfg),
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
            max_tokens=cfg.max_tokens,
        )

    def chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]] = (),
        *,
        tool_choice: str | dict[str, Any] | None = None,
    ) -> ChatMessage:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in messages],
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "stream": False,
        }
        if tools:
            body["tools"] = list(tools)
            body["tool_choice"] = tool_choice or "auto"
        return parse_completion(self._post("/chat/completions", body))

    def models(self) -> list[str]:
        """The model names the server serves (``GET /models``)."""
        data = self._request("GET", "/models", None)
        try:
            return [str(m["id"]) for m in data["data"]]
        except (KeyError, TypeError) as exc:
            raise error(ErrorCode.LLM_BAD_RESPONSE, reason="no model list") from exc

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        attempts, reason = 0, "no attempt"
        with httpx.Client(
            timeout=self.timeout_s, transport=self.transport, headers=headers
        ) as client:
            while attempts <= self.retries:
                if attempts:
                    time.sleep(self.backoff_s * 2 ** (attempts - 1))
                attempts += 1
                started = time.monotonic()
                try:
                    r = client.request(method, self.base_url + path, json=body)
                except httpx.TimeoutException:
                    reason = "timeout"
                    continue
                except httpx.TransportError as exc:
                    reason = f"connection failed: {type(exc).__name__}"
                    continue
                logger.info(
                    "llm %s %s: HTTP %d in %.2fs",
                    method,
                    path,
                    r.status_code,
                    time.monotonic() - started,
                )
                if r.status_code >= 500:
                    reason = f"HTTP {r.status_code}"
                    continue
                if r.status_code >= 400:  # the body may echo the prompt: never read it out
                    raise error(ErrorCode.LLM_BAD_RESPONSE, reason=f"HTTP {r.status_code}")
                try:
                    data = r.json()
                except ValueError as exc:
                    raise error(ErrorCode.LLM_BAD_RESPONSE, reason="not JSON") from exc
                if not isinstance(data, dict):
                    raise error(ErrorCode.LLM_BAD_RESPONSE, reason="not a JSON object")
                return data
        raise error(ErrorCode.LLM_UNREACHABLE, url=self.base_url, reason=reason, attempts=attempts)


def parse_completion(data: dict[str, Any]) -> ChatMessage:
    """The assistant message of a chat completion (``LH-LLM-002`` when malformed)."""
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise error(ErrorCode.LLM_BAD_RESPONSE, reason="no choices[0].message") from exc
    if not isinstance(message, dict):
        raise error(ErrorCode.LLM_BAD_RESPONSE, reason="message is not an object")
    calls = []
    for i, call in enumerate(message.get("tool_calls") or ()):
        try:
            fn = call["function"]
            name, raw = str(fn["name"]), fn.get("arguments") or "{}"
        except (KeyError, TypeError) as exc:
            raise error(ErrorCode.LLM_BAD_RESPONSE, reason="a tool call has no function") from exc
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise error(
                ErrorCode.LLM_BAD_RESPONSE, reason="tool call arguments are not JSON"
            ) from exc
        if not isinstance(args, dict):
            raise error(ErrorCode.LLM_BAD_RESPONSE, reason="tool call arguments are not an object")
        calls.append(ToolCall(str(call.get("id") or f"call_{i}"), name, args))
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise error(ErrorCode.LLM_BAD_RESPONSE, reason="content is not text")
    if not calls and not (content or "").strip():
        raise error(ErrorCode.LLM_BAD_RESPONSE, reason="neither text nor tool calls")
    return ChatMessage("assistant", content, tuple(calls))


def read_api_key(cfg: AssistantLLMSettings) -> str | None:
    """The API key from ``llm.api_key_file`` or the variable ``llm.api_key_env``; None if
    neither is set."""
    if cfg.api_key_file is not None:
        try:
            return cfg.api_key_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise error(
                ErrorCode.CONFIG_INVALID,
                setting="llm.api_key_file",
                reason=f"cannot be read ({type(exc).__name__})",
            ) from exc
    if cfg.api_key_env:
        value = os.environ.get(cfg.api_key_env, "").strip()
        if not value:
            raise error(
                ErrorCode.CONFIG_INVALID, setting="llm.api_key_env", reason="variable is empty"
            )
        return value
    return None


def check_endpoint(url: str, *, allow_remote: bool = False) -> None:
    """Refuse (``LH-LLM-003``) an endpoint that is not http(s) on a loopback or
    private-network address, unless ``allow_remote``. Host names are resolved: every
    address must be loopback or private; a name that does not resolve is refused."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else url
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise error(ErrorCode.LLM_ENDPOINT_NOT_ALLOWED, url=shown, reason="not an http(s) URL")
    if parts.username or parts.password:
        raise error(
            ErrorCode.LLM_ENDPOINT_NOT_ALLOWED,
            url=f"{parts.scheme}://{parts.hostname}",
            reason="credentials in the URL (use llm.api_key_file)",
        )
    if allow_remote:
        return
    host = parts.hostname
    if host == "localhost":
        return
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise error(
                ErrorCode.LLM_ENDPOINT_NOT_ALLOWED, url=shown, reason="the host does not resolve"
            ) from exc
        addresses = [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]
    if not addresses or not all(_local(a) for a in addresses):
        raise error(
            ErrorCode.LLM_ENDPOINT_NOT_ALLOWED,
            url=shown,
            reason="not a loopback or private-network address (llm.allow_remote is false)",
        )


def _local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.is_loopback:
        return True
    return address.is_private and not (address.is_unspecified or address.is_link_local)


__all__ = [
    "ChatMessage",
    "ChatModel",
    "OpenAICompatibleChat",
    "ToolCall",
    "check_endpoint",
    "parse_completion",
    "read_api_key",
]
