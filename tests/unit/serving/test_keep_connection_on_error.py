"""An unhandled exception answers LH-SRV-004 and leaves the keep-alive connection usable
(serving.app.KeepConnectionOnError): nginx reuses upstream connections (docs/adr/0029)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from serving.app import KeepConnectionOnError


def _app() -> FastAPI:
    app = FastAPI()
    inner = FastAPI()  # a mounted app with its own catch-all handler, like /fhir/r4

    @inner.exception_handler(Exception)
    async def inner_failed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": {"code": "inner"}}, status_code=500)

    @inner.get("/boom")
    def inner_boom() -> None:
        raise RuntimeError("patient P001")  # the text must not reach the answer or the log

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("patient P001")

    @app.get("/ok")
    def ok() -> dict[str, int]:
        return {"ok": 1}

    app.mount("/inner", inner)
    app.add_middleware(KeepConnectionOnError)
    return app


@pytest.fixture
def port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_app(), log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield int(sock.getsockname()[1])
    server.should_exit = True
    thread.join(timeout=10)


def test_an_exception_answers_lh_srv_004_on_a_connection_that_stays_open(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path, code in (("/boom", "LH-SRV-004"), ("/inner/boom", "inner")):
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read().decode()
        assert answer.status == 500
        assert json.loads(body)["error"]["code"] == code
        assert "P001" not in body
        time.sleep(0.1)  # uvicorn would have closed the connection by now
        conn.request("GET", "/ok")  # the same connection
        again = conn.getresponse()
        assert (again.status, json.loads(again.read())) == (200, {"ok": 1})
    conn.close()
