"""A tiny random-weight language model behind an OpenAI-compatible server, for wire tests.

Nothing is downloaded: :class:`TinyDecoder` is a 2-layer transformer decoder over a byte
vocabulary (256 tokens), its weights drawn from a seeded generator when the server starts
(numpy only; about 30 k parameters). It writes nonsense, deterministically (greedy decoding,
temperature 0 whatever is asked), which is what a test of the wire needs: the client, the
agent's tool-calling loop and the agent's refusal to show an unverifiable answer.

``python -m serving.assistant.tiny_llm --port 8009`` serves, as vLLM does (the subset the
assistant uses, non-streaming): ``GET /v1/models`` and ``POST /v1/chat/completions`` with
``tools`` and ``tool_choice`` (``auto``, ``required``, ``none`` or a named function).
Tool calls come from **schema-constrained decoding**, like vLLM's guided decoding: the JSON
structure ``{"name": ..., "arguments": {...}}`` is forced by the tool's JSON schema and the
model's logits choose among the characters or values the schema allows at each point
(the tool name among the tools, enum values, booleans, digits, string characters). With
``tool_choice="auto"`` the server calls a tool when the last message is the user's and
writes text after tool results (a real model decides; this one would decide at random).
"""

from __future__ import annotations

import os

# One BLAS thread: the matrices are tiny and threads only contend (50x slower on a loaded
# 2-core machine). Set before numpy loads when the module runs as the server.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

_PRINTABLE = [b for b in range(32, 127)]
_ID_CHARS = [ord(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"]
_DIGITS = [ord(c) for c in "0123456789"]
_QUOTE = ord('"')


class TinyDecoder:
    """A seeded random 2-layer decoder over bytes (pre-norm, single head, tied output)."""

    def __init__(self, *, seed: int = 0, dim: int = 32, layers: int = 2, context: int = 128):
        rng = np.random.default_rng(seed)
        self.dim, self.context = dim, context
        self.embed = rng.normal(0.0, 1.0, (256, dim)).astype(np.float32)
        pos = np.arange(context)[:, None] / (10000 ** (np.arange(0, dim, 2) / dim))[None, :]
        self.pos = np.zeros((context, dim), np.float32)
        self.pos[:, 0::2], self.pos[:, 1::2] = np.sin(pos), np.cos(pos)
        scale = 1.0 / np.sqrt(dim)
        self.layers = [
            {
                name: rng.normal(0.0, scale, shape).astype(np.float32)
                for name, shape in (
                    ("q", (dim, dim)),
                    ("k", (dim, dim)),
                    ("v", (dim, dim)),
                    ("o", (dim, dim)),
                    ("up", (dim, 4 * dim)),
                    ("down", (4 * dim, dim)),
                )
            }
            for _ in range(layers)
        ]
        self.mask = np.triu(np.full((context, context), -1e9, np.float32), 1)

    @property
    def parameters(self) -> int:
        return int(self.embed.size + sum(w.size for layer in self.layers for w in layer.values()))

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Next-byte logits after ``tokens`` (the last ``context`` of them)."""
        ids = np.asarray(tokens[-self.context :] or [0])
        n = len(ids)
        x = self.embed[ids] + self.pos[:n]
        for w in self.layers:
            h = _norm(x)
            q, k, v = h @ w["q"], h @ w["k"], h @ w["v"]
            att = q @ k.T / np.sqrt(self.dim) + self.mask[:n, :n]
            att = np.exp(att - att.max(axis=1, keepdims=True))
            att /= att.sum(axis=1, keepdims=True)
            x = x + (att @ v) @ w["o"]
            x = x + np.maximum(_norm(x) @ w["up"], 0.0) @ w["down"]
        out: np.ndarray = (_norm(x[-1:]) @ self.embed.T)[0]
        return out


def _norm(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x - x.mean(axis=-1, keepdims=True)) / (x.std(axis=-1, keepdims=True) + 1e-5)
    return out


class Decoding:
    """Greedy decoding of one reply, free or constrained to what a JSON schema allows."""

    def __init__(self, model: TinyDecoder, prompt: bytes) -> None:
        self.model = model
        self.tokens = list(prompt)
        self.start = len(self.tokens)

    @property
    def written(self) -> int:
        return len(self.tokens) - self.start

    def force(self, text: str) -> str:
        self.tokens.extend(text.encode())
        return text

    def pick(self, allowed: Sequence[int]) -> int:
        logits = self.model.logits(self.tokens)
        best = max(allowed, key=lambda b: float(logits[b]))
        self.tokens.append(best)
        return best

    def choose(self, options: Sequence[str], end: str = "") -> str:
        """One of ``options`` (followed by ``end``), letter by letter where they differ."""
        left = [(o + end).encode() for o in options]  # prefix-free: end closes each
        i = 0
        while len(left) > 1 or i < len(left[0]):
            nexts = sorted({o[i] for o in left})
            if len(nexts) == 1:
                b = nexts[0]
                self.tokens.append(b)
            else:
                b = self.pick(nexts)
            left = [o for o in left if o[i] == b]
            i += 1
        return left[0][: len(left[0]) - len(end.encode())].decode()

    def free(self, chars: Sequence[int], max_len: int, stop: int | None = None) -> str:
        """Up to ``max_len`` characters of ``chars``, ended early when the model picks
        ``stop`` (after at least one character)."""
        out = bytearray()
        while len(out) < max_len:
            b = self.pick([*chars, stop] if stop is not None and out else chars)
            if b == stop:
                self.tokens.pop()
                break
            out.append(b)
        return out.decode("ascii", "replace")

    def value(self, schema: dict[str, Any]) -> Any:
        """A JSON value allowed by ``schema`` (the subset tool schemas use), written into
        the sequence as JSON text and returned as Python."""
        kind = schema.get("type", "string")
        if "enum" in schema:
            self.force('"')
            return self.choose([str(e) for e in schema["enum"]], '"')
        if kind == "boolean":
            return self.choose(["true", "false"]) == "true"
        if kind in ("integer", "number"):
            return int(self.free(_DIGITS, 3, stop=ord(",")) or "0")
        if kind == "array":
            self.force("[")
            item = self.value(schema.get("items", {"type": "string"}))
            self.force("]")
            return [item]
        if kind == "object":
            props: dict[str, Any] = schema.get("properties", {})
            keys = list(schema.get("required") or list(props)[:1])
            out: dict[str, Any] = {}
            self.force("{")
            for i, key in enumerate(keys):
                self.force(("," if i else "") + json.dumps(key) + ":")
                out[key] = self.value(props.get(key, {"type": "string"}))
            self.force("}")
            return out
        self.force('"')
        text = self.free(_ID_CHARS, 12, stop=_QUOTE)
        self.force('"')
        return text


def _prompt(messages: list[dict[str, Any]]) -> bytes:
    parts = []
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str):
            content = json.dumps(m.get("tool_calls") or content or "", ensure_ascii=False)
        parts.append(f"<|{m.get('role', 'user')}|>{content}\n")
    return ("".join(parts) + "<|assistant|>").encode()


def _wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function schema to call, or None for a text reply."""
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto" if tools else "none")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        named = [t for t in tools if t.get("name") == name]
        return named[0] if named else None
    messages = body.get("messages") or []
    if choice == "auto" and (not messages or messages[-1].get("role") != "user"):
        return None
    return {"name": None, "tools": tools}


def create_app(model_name: str = "tiny-random", *, seed: int = 0) -> FastAPI:
    """The server of one :class:`TinyDecoder` under ``model_name``."""
    model = TinyDecoder(seed=seed)
    app = FastAPI(title="tiny random-weight model", docs_url=None, redoc_url=None)
    created = int(time.time())
    calls = {"n": 0}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "test"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "messages is required")
        if body.get("model") != model_name:
            return _error(404, f"the model {body.get('model')!r} does not exist")
        decoding = Decoding(model, _prompt(body["messages"]))
        max_tokens = min(int(body.get("max_tokens") or 64), 64)
        wanted = _wants_tool(body)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if wanted is None:
            message["content"] = decoding.free(_PRINTABLE, max_tokens)
            finish = "length"
        else:
            tools = wanted.get("tools") or [wanted]
            decoding.force('{"name":"')
            name = decoding.choose([t["name"] for t in tools], '"')
            schema = next(t for t in tools if t["name"] == name)
            decoding.force(',"arguments":')
            args = decoding.value(schema.get("parameters") or {"type": "object"})
            decoding.force("}")
            calls["n"] += 1
            message["tool_calls"] = [
                {
                    "id": f"call_{calls['n']}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ]
            finish = "tool_calls"
        prompt_tokens = decoding.start
        return JSONResponse(
            {
                "id": f"chatcmpl-{calls['n']}-{int(time.time() * 1000)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": decoding.written,
                    "total_tokens": prompt_tokens + decoding.written,
                },
            }
        )

    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}},
        status_code=status,
    )


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8009)
    parser.add_argument("--model", default="tiny-random", help="the served model name")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.model, seed=args.seed), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
