"""The FHIR R4 REST endpoints, mounted by :func:`serving.app.create_app` under ``/fhir/r4``.

``GET metadata`` (CapabilityStatement, no sign-in), ``GET {type}/{id}`` (read),
``GET {type}?...`` (search: a ``searchset`` Bundle with ``total`` and ``next`` links),
``GET Patient/{id}/$everything``. Sign-in is the assistant's: ``Authorization: Bearer
<token>`` from ``POST /api/login``. Errors answer a FHIR ``OperationOutcome`` carrying the
catalogued code (``LH-…``) with the code's HTTP status; never a stack trace or a patient
value. docs/fhir.md has the mappings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakehouse import __version__
from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.sessions import Principal
from lakehouse.settings import Settings
from serving.assistant.tools import DataTools
from serving.fhir.export import NDJSON, ExportJobs
from serving.fhir.resources import KINDS, VARIANTS, Kind, Resource
from serving.fhir.search import MAX_COUNT, parse
from serving.fhir.store import FhirStore

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
PREFIX = "/fhir/r4"
ERROR_CODES = "urn:lakehouse:error-code"
_ISSUE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 422: "invalid"}
T = TypeVar("T")


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def outcome(exc: LakehouseError) -> JSONResponse:
    """The OperationOutcome of a catalogued error, with the code's HTTP status."""
    status = exc.code.http_status
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE.get(status, "exception"),
                "details": {
                    "coding": [
                        {"system": ERROR_CODES, "code": exc.code.id, "display": exc.code.name}
                    ],
                    "text": exc.render(),
                },
            }
        ],
    }
    headers = {"WWW-Authenticate": 'Bearer realm="fhir"'} if status == 401 else None
    return FhirResponse(body, status_code=status, headers=headers)


@dataclass(frozen=True)
class _State:
    identity: IdentityService
    cookie_name: str


def _principal(request: Request) -> Principal:
    """The signed-in user: bearer token, else the session cookie (``LH-SEC-005`` if none)."""
    state: _State = request.app.state.fhir
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = request.cookies.get(state.cookie_name, "")
    if not token.strip():
        raise error(ErrorCode.SESSION_INVALID, reason="missing")
    return state.identity.session(token.strip())


User = Annotated[Principal, Depends(_principal)]


def fhir_app(tools: DataTools, identity: IdentityService, cfg: Settings) -> FastAPI:
    """The FHIR sub-application over the assistant's data tools and identity service."""
    store = FhirStore(tools, ZoneInfo(cfg.timezone))
    app = FastAPI(
        title="Clinical lakehouse FHIR R4",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=FhirResponse,
    )
    app.state.fhir = _State(identity, cfg.serve.cookie_name)

    @app.exception_handler(LakehouseError)
    async def lakehouse_error(request: Request, exc: LakehouseError) -> JSONResponse:
        return outcome(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = outcome(error(ErrorCode.FHIR_TYPE_UNSUPPORTED, name=f"HTTP {exc.status_code}"))
        body.status_code = exc.status_code
        return body

    @app.get("/metadata")
    def metadata(request: Request) -> Resource:
        return capability_statement(_base(request))

    exports = ExportJobs(tools.spark, tools.access, store, cfg.data_dir / "serving" / "fhir-export")
    app.state.exports = exports

    def kick_off(request: Request, who: Principal, level: str) -> Response:
        if "respond-async" not in request.headers.get("prefer", ""):
            raise error(ErrorCode.FHIR_EXPORT_ASYNC_REQUIRED)
        q = request.query_params
        for name in q:
            if name not in ("_type", "_since", "_outputFormat"):
                raise error(ErrorCode.FHIR_EXPORT_INVALID, name=_shown(name), reason="not served")
        job = exports.start(
            who,
            str(request.url),
            types=q.get("_type"),
            since=q.get("_since"),
            output_format=q.get("_outputFormat"),
            level=level,
        )
        status = f"{_base(request)}/$export-status/{job.id}"
        return Response(status_code=202, headers={"Content-Location": status})

    @app.get("/$export")
    def export_system(request: Request, who: User) -> Response:
        """Institution-level export: every type, the caller's scope (their institutions)."""
        return kick_off(request, who, "system")

    @app.get("/Patient/$export")
    def export_patients(request: Request, who: User) -> Response:
        """Patient-level export: the patients in the caller's scope and their resources."""
        return kick_off(request, who, "patient")

    @app.get("/$export-status/{job_id}", response_model=None)
    def export_status(job_id: str, request: Request, who: User) -> Response:
        """Export status: 202 with X-Progress while running, 200 with the manifest when
        done, the job's OperationOutcome when it failed."""
        job = exports.job(who, job_id)
        if job.state == "running":
            return Response(
                status_code=202, headers={"X-Progress": job.progress, "Retry-After": "2"}
            )
        if job.state == "done":
            return JSONResponse(job.manifest(_base(request)))
        if job.error is not None:
            return outcome(job.error)
        raise error(ErrorCode.FHIR_EXPORT_NOT_FOUND, name="job")

    @app.delete("/$export-status/{job_id}")
    def export_cancel(job_id: str, who: User) -> Response:
        """Cancel an export (or remove a finished one's files): 202."""
        exports.cancel(who, job_id)
        return Response(status_code=202)

    @app.get("/$export-file/{job_id}/{name}")
    def export_file(job_id: str, name: str, who: User) -> FileResponse:
        """One NDJSON file of a finished export of the signed-in user."""
        return FileResponse(exports.file(who, job_id, name), media_type=NDJSON)

    @app.get("/Patient/{fhir_id}/$everything")
    def everything(fhir_id: str, request: Request, who: User) -> Resource:
        resources = guarded(lambda: store.everything(who, fhir_id))
        return _bundle(_base(request), str(request.url), resources, len(resources), [], None)

    @app.get("/{rtype}/{fhir_id}")
    def read(rtype: str, fhir_id: str, who: User) -> Resource:
        kind = _kind(rtype)
        return guarded(lambda: store.read(who, kind, fhir_id))

    @app.get("/{rtype}")
    def search(rtype: str, request: Request, who: User) -> Resource:
        kind = _kind(rtype)
        params = list(request.query_params.multi_items())
        searches = [(k, parse(k, params, store.zone)) for k in VARIANTS[kind.type]]
        found = searches[0][1]
        page = guarded(lambda: store.search(who, searches))
        nxt = None
        seen = found.offset + found.count
        if len(page.resources) == found.count and (page.total is None or page.total > seen):
            kept = [(k, v) for k, v in params if k != "_offset"]
            nxt = f"{_base(request)}/{rtype}?{urlencode([*kept, ('_offset', str(seen))])}"
        return _bundle(
            _base(request), str(request.url), page.resources, page.total, page.included, nxt
        )

    return app


def _shown(name: str) -> str:
    return name if name.isascii() and name.replace("_", "").isalpha() and len(name) < 40 else "?"


def _kind(rtype: str) -> Kind:
    kind = KINDS.get(rtype)
    if kind is None:
        raise error(ErrorCode.FHIR_TYPE_UNSUPPORTED, name=rtype if rtype.isalpha() else "?")
    return kind


def guarded(fn: Callable[[], T]) -> T:
    """Run a read; an uncatalogued failure becomes ``LH-SRV-004`` (its type logged only:
    the exception text may hold data values)."""
    try:
        return fn()
    except LakehouseError:
        raise
    except Exception as exc:
        logger.error("read failed: %s", type(exc).__name__)
        raise error(ErrorCode.SRV_INTERNAL, reason=type(exc).__name__) from None


def _base(request: Request) -> str:
    url = str(request.url)
    return url[: url.index(PREFIX) + len(PREFIX)] if PREFIX in url else url.rstrip("/")


def _bundle(
    base: str,
    self_url: str,
    resources: list[Resource],
    total: int | None,
    included: list[Resource],
    next_url: str | None,
) -> Resource:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    entries = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": mode},
        }
        for group, mode in ((resources, "match"), (included, "include"))
        for r in group
    ]
    bundle: Resource = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if total is not None:
        bundle["total"] = total
    bundle["entry"] = entries
    return bundle


def capability_statement(base: str) -> Resource:
    """What this server serves: types, interactions, search parameters, operations."""
    resources: list[dict[str, Any]] = []
    for kind in KINDS.values():
        params = [{"name": "_id", "type": "token"}]
        if kind.clinical and kind.patient_linked:
            params += [
                {"name": "patient", "type": "reference"},
                {"name": "subject", "type": "reference"},
            ]
        if kind.codes:
            params.append({"name": "code", "type": "token"})
        if kind.date:
            params.append({"name": kind.date_param, "type": "date"})
        if any(k.category for k in VARIANTS[kind.type]):
            params.append({"name": "category", "type": "token"})
        entry: dict[str, Any] = {
            "type": kind.type,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": params,
        }
        if kind.clinical and kind.patient_linked:
            entry["searchInclude"] = [f"{kind.type}:patient"]
        elif not kind.clinical:
            entry["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                },
                {
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
                    "patient-export",
                },
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "publisher": "Clinical data lakehouse",
        "kind": "instance",
        "software": {"name": "lakehouse", "version": __version__},
        "implementation": {"description": "FHIR R4 read API over silver", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "ndjson"],
        "rest": [
            {
                "mode": "server",
                "documentation": f"Searches page by _count (at most {MAX_COUNT}) and _offset.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "Basic",
                                }
                            ],
                            "text": "Bearer session token from POST /api/login",
                        }
                    ]
                },
                "resource": resources,
                "operation": [
                    {
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                    }
                ],
            }
        ],
    }
