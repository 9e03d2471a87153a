"""The clinical assistant service: FastAPI over one Spark session per process.

``create_app(spark, cfg)`` wires the governance layer (accounts and sessions from
:mod:`lakehouse.governance.identity`, guarded and audited reads from
:mod:`lakehouse.governance.access`) to the assistant's data tools and grounded planner.

Endpoints (docs/assistant.md): ``POST /api/login``, ``POST /api/logout``, ``GET /api/me``,
``POST /api/ask``, ``GET /api/citations/{citation}``, ``GET /api/health``, ``GET`` and
``DELETE /api/history`` (the user's own questions and answers), and the chat page at ``/``
(:mod:`serving.page`); the operations console at ``/console``, ``/api/console/<panel>`` and
``/metrics`` (:mod:`serving.console`). Every endpoint
but login and health needs a valid, unexpired session: ``Authorization: Bearer <token>`` or
the HttpOnly, Secure session cookie. Errors answer ``{"error": {code, name, message,
param}}`` with the code's HTTP status; never a stack trace, never a patient value.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import SparkSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakehouse import __version__
from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit_journal import JournaledAuditLog, service_audit_log
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.sessions import Principal
from lakehouse.settings import Settings
from serving.assistant.agent import ToolAgent
from serving.assistant.citations import Citation
from serving.assistant.knowledge import KnowledgeTool
from serving.assistant.lexicon import Lexicon, load_lexicon
from serving.assistant.llm import ChatModel, OpenAICompatibleChat
from serving.assistant.note_search import NoteRanker
from serving.assistant.planner import GroundedPlanner
from serving.assistant.tools import DataTools, ToolTables
from serving.console import Console, ConsoleTables, mount_console
from serving.fhir.api import fhir_app
from serving.history import ChatHistory
from serving.interop.api import interop_app
from serving.page import mount_page

logger = logging.getLogger(__name__)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)
    role: str | None = Field(default=None, max_length=32)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    patient: str | None = Field(default=None, max_length=128)


@dataclass
class Assistant:
    """What the endpoints use: identity, tools, planner (one of each per process)."""

    cfg: Settings
    identity: IdentityService
    tools: DataTools
    planner: GroundedPlanner
    history: ChatHistory | None = None
    #: The LLM agent when ``llm.endpoint`` is set (or a model is given); else grounded mode.
    agent: ToolAgent | None = None
    #: The assistant's knowledge-base retrieval (``kb:`` citations resolve through it).
    knowledge: KnowledgeTool | None = None


def _principal(request: Request) -> Principal:
    """The signed-in user: bearer token, else the session cookie (``LH-SEC-005`` if none)."""
    state: Assistant = request.app.state.assistant
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = request.cookies.get(state.cfg.serve.cookie_name, "")
    if not token.strip():
        raise error(ErrorCode.SESSION_INVALID, reason="missing")
    return state.identity.session(token.strip())


User = Annotated[Principal, Depends(_principal)]


def create_app(
    spark: SparkSession,
    cfg: Settings,
    *,
    identity: IdentityService | None = None,
    access: AccessService | None = None,
    tables: ToolTables | None = None,
    lexicon: Lexicon | None = None,
    now: Callable[[], datetime] | None = None,
    history: ChatHistory | None = None,
    chat_model: ChatModel | None = None,
    console_tables: ConsoleTables | None = None,
) -> FastAPI:
    """The service; governance parts are built from ``cfg`` unless given (tests, embedding).
    With ``llm.endpoint`` set (or ``chat_model`` given) questions go to the LLM agent,
    whose unverifiable answers fall back to the grounded planner (docs/adr/0020)."""
    journal: JournaledAuditLog | None = None
    if identity is None or access is None:
        from lakehouse.governance.access import access_service
        from lakehouse.governance.identity import identity_service

        # One audit log for sign-ins and reads: journaled, so a read waits for an fsync,
        # not a Delta commit (docs/adr/0017).
        log = service_audit_log(spark, cfg, f"serve-{cfg.serve.port}")  # one per replica
        journal = log if isinstance(log, JournaledAuditLog) else None
        access = access or access_service(spark, cfg, audit=log)
        identity = identity or identity_service(cfg, log)
    if lexicon is None:
        lexicon = load_lexicon(spark, max_terms=cfg.serve.lexicon_max_terms)
    zone = ZoneInfo(cfg.timezone)
    clock = now or (lambda: datetime.now(zone).replace(tzinfo=None))
    tools = DataTools(
        spark, access, tables, max_rows=cfg.serve.max_rows, ranker=NoteRanker.from_settings(cfg)
    )
    from lakehouse.knowledge import knowledge_base  # knowledge base (docs/knowledge-base.md)
    from serving.kb import mount_knowledge

    kb = knowledge_base(cfg)
    knowledge = KnowledgeTool.of(kb, identity.audit)
    planner = GroundedPlanner(tools, lexicon, now=clock, knowledge=knowledge)
    state = Assistant(cfg, identity, tools, planner, knowledge=knowledge)
    if chat_model is None and cfg.llm.endpoint is not None:
        chat_model = OpenAICompatibleChat.from_settings(cfg.llm)  # LH-LLM-003: not local
    if chat_model is not None:
        state.agent = ToolAgent(
            tools, lexicon, chat_model, fallback=state.planner, max_steps=cfg.llm.max_steps
        )
    state.history = history or ChatHistory(cfg.data_dir / "serving" / "history.db", identity.audit)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if journal is not None:  # ship what is journaled before the process ends
            journal.close()

    app = FastAPI(
        title="Clinical lakehouse assistant",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.assistant = state
    _handlers(app)
    app.add_middleware(KeepConnectionOnError)
    app.mount("/fhir/r4", fhir_app(tools, identity, cfg))  # FHIR R4 read API (docs/fhir.md)
    interop = interop_app(tools, zone, _principal)  # 4A query services (docs/interop-4a.md)
    interop.state.assistant = state  # what _principal reads
    _handlers(interop)
    app.mount("/interop/4a", interop)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.post("/api/login")
    def login(body: LoginRequest, response: Response) -> dict[str, Any]:
        token, who = state.identity.login(
            body.username, body.password, totp=body.totp, role=body.role
        )
        response.set_cookie(
            cfg.serve.cookie_name,
            token,
            max_age=state.identity.signer.ttl_s,
            httponly=True,
            secure=True,
            samesite="strict",
            path="/api",
        )
        return {"token": token, "expires_in": state.identity.signer.ttl_s, **_me(who)}

    @app.post("/api/logout")
    def logout(who: User, response: Response) -> dict[str, str]:
        response.delete_cookie(cfg.serve.cookie_name, path="/api", secure=True, httponly=True)
        return {"status": "signed out"}

    @app.get("/api/me")
    def me(who: User) -> dict[str, Any]:
        return _me(who)

    @app.post("/api/ask")
    def ask(body: AskRequest, who: User) -> dict[str, Any]:
        answer = (state.agent or state.planner).ask(who, body.question, body.patient)
        out: dict[str, Any] = {
            "answer": answer.text,
            "lang": answer.lang,
            "sentences": [
                {"text": s.text, "citations": list(s.citations)} for s in answer.sentences
            ],
            "citations": answer.citations,
            "refused": answer.refused,
            "mode": answer.mode,
        }
        if answer.code:
            out["code"] = answer.code
        if answer.fallback:
            out["fallback"] = answer.fallback
        _remember(state, who, body, out)
        return out

    @app.get("/api/history")
    def history_list(who: User, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        assert state.history is not None
        return {"entries": state.history.entries(who, limit)}

    @app.delete("/api/history")
    def history_clear(who: User) -> dict[str, int]:
        assert state.history is not None
        return {"deleted": state.history.clear(who)}

    @app.get("/api/citations/{citation:path}")
    def citation(citation: str, who: User) -> dict[str, Any]:
        cited = Citation.parse(citation, state.tools.key_widths(), state.tools.span_tables())
        if cited.is_kb:  # a span of a knowledge-base document (docs/knowledge-base.md)
            found = state.knowledge.cited(who, cited) if state.knowledge else None
            if found is None:
                raise error(ErrorCode.AKB_CITATION_NOT_FOUND, reason=str(cited))
            return {"citation": str(cited), **found}
        row = state.tools.cited_row(who, cited)
        if row is None or (cited.span is not None and row.get("span_text") is None):
            raise error(ErrorCode.SRV_CITATION_NOT_FOUND, table=cited.table, version=cited.version)
        out = {
            "citation": str(cited),
            "table": cited.table,
            "version": cited.version,
            "key": list(cited.key),
            "row": jsonable_encoder(row),
        }
        if cited.span is not None:  # a span of a note's text: the span and its text
            out["span"] = list(cited.span)
            out["span_text"] = row["span_text"]
        return out

    mount_knowledge(app, kb, identity.audit, _principal)
    # The operations console and /metrics (docs/operations.md, Console and metrics).
    console = Console(
        spark, cfg, identity.audit, access.guard.policy, console_tables, access=access
    )
    mount_console(app, console, _principal, state.identity.session)
    app.state.console = console  # lakehouse serve warms its panels at start
    mount_page(app)
    return app


def _remember(state: Assistant, who: Principal, body: AskRequest, out: dict[str, Any]) -> None:
    """Keep the answered question in the user's history; a failure there loses the entry
    (logged by type), never the answer."""
    if state.history is None:
        return
    try:
        state.history.add(who, body.question, body.patient, out)
    except Exception as exc:
        logger.warning("chat history write failed: %s", type(exc).__name__)


def _me(who: Principal) -> dict[str, Any]:
    return {
        "username": who.username,
        "role": who.role,
        "department": who.department,
        "institutions": list(who.institutions),
    }


class KeepConnectionOnError:
    """Answers an unhandled exception with ``LH-SRV-004`` before Starlette's outermost
    error middleware sees it. That middleware answers too but then re-raises, and uvicorn
    closes the keep-alive connection without a ``Connection: close``: nginx, reusing the
    connection for the next request, gets no answer, replies 502 (a POST is not retried)
    and counts a failure against the replica (docs/adr/0029). Here the connection stays
    usable. An exception after the answer was complete (a mounted app's own handler) is
    logged and dropped; one in the middle of an answer still closes the connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "done": False}

        async def tracked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                state["done"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if state["started"] and not state["done"]:
                raise  # half an answer was sent: only closing the connection ends it
            rid = dict(scope.get("headers") or []).get(b"x-request-id", b"-")[:64]
            rid_text = rid.decode("ascii", "replace")
            logger.error(
                "request %s %s failed: %s (request id %s)",
                scope.get("method"),
                "/".join(str(scope.get("path", "")).split("/")[:3]),  # ids stay out of logs
                type(exc).__name__,
                rid_text if rid_text.replace("-", "").replace(".", "").isalnum() else "?",
            )
            if not state["done"]:
                response = _body(error(ErrorCode.SRV_INTERNAL, reason=type(exc).__name__))
                await response(scope, receive, send)


def _body(exc: LakehouseError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.code.http_status)


def _handlers(app: FastAPI) -> None:
    """Catalogued JSON errors only: no stack trace, no echo of the input."""

    @app.exception_handler(LakehouseError)
    async def lakehouse_error(request: Request, exc: LakehouseError) -> JSONResponse:
        return _body(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()})
        reason = f"missing or invalid field(s): {', '.join(f for f in fields if f) or 'body'}"
        return _body(error(ErrorCode.SRV_REQUEST_INVALID, reason=reason))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = ErrorCode.SRV_REQUEST_INVALID
        body = error(code, reason=f"HTTP {exc.status_code}").to_dict()
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        # The exception's text may hold data values: log its type only.
        # X-Request-ID: nginx's id of the request (docs/adr/0029), to find it in its log.
        rid = request.headers.get("x-request-id", "-")[:64]
        logger.error(
            "request %s %s failed: %s (request id %s)",
            request.method,
            request.url.path,
            type(exc).__name__,
            rid if rid.replace("-", "").replace(".", "").replace("_", "").isalnum() else "?",
        )
        return _body(error(ErrorCode.SRV_INTERNAL, reason=type(exc).__name__))


def tls_files(cfg: Settings) -> tuple[Path, Path] | None:
    """Certificate and key of the HTTPS listener (:func:`lakehouse.governance.tls.server_tls`);
    None when ``serve.tls`` is off, which is allowed on a loopback host only."""
    from lakehouse.governance.tls import is_loopback, server_tls

    if not cfg.serve.tls:
        if not is_loopback(cfg.serve.host):
            raise error(
                ErrorCode.CONFIG_INVALID,
                setting="serve.tls",
                reason="plain HTTP is allowed on a loopback address only",
            )
        return None
    files = server_tls(cfg)
    return files.cert, files.key
