"""The OpenAPI documents of the HTTP services, built from the route table without Spark.

``create_app`` needs a Spark session and the governance services, but its route table does
not: :func:`openapi_schemas` builds the app with inert stand-ins (nothing is read, written
or started; every dependency call returns another stand-in) and asks FastAPI for the schema
of the assistant and, separately, of the FHIR sub-application mounted at ``/fhir/r4``
(FastAPI does not merge mounted applications into the parent's schema).

FastAPI's default ``422`` (its own validation body) is replaced by the catalogued errors a
route answers with, found in the code: an invalid request (when the app has its handler),
a missing or invalid session (routes that depend on a signed-in :class:`Principal`), the
codes the endpoint raises itself or through helpers of its module, and the service's
internal error. ``default`` stands for any other catalogued error, same body.

:func:`openapi_documents` renders ``docs/openapi/*.json`` and ``docs/interfaces.md``
(through :mod:`lakehouse.reference`); ``lakehouse docs`` writes them and the staleness test
fails when a route changes without them.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import tempfile
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fastapi.routing
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.routing import Mount

from lakehouse.errors import ErrorCode
from lakehouse.governance.sessions import Principal
from lakehouse.reference import render_interfaces, render_openapi
from lakehouse.settings import load_settings


class _SchemaOnly:
    """An inert stand-in for a service dependency while only the route table is built."""

    def __getattr__(self, name: str) -> _SchemaOnly:
        if name.startswith("__"):
            raise AttributeError(name)
        return _SchemaOnly()

    def __call__(self, *args: object, **kwargs: object) -> _SchemaOnly:
        return _SchemaOnly()

    def __iter__(self) -> typing.Iterator[Any]:
        return iter(())


@dataclass(frozen=True)
class Service:
    """One HTTP service: its file under docs/openapi/, base path and error body."""

    name: str
    title: str
    base: str
    media_type: str
    error_schema: str
    internal: ErrorCode | None


ASSISTANT = Service(
    "assistant", "Clinical assistant", "", "application/json", "Error", ErrorCode.SRV_INTERNAL
)
FHIR = Service(
    "fhir-r4", "FHIR R4 read API", "/fhir/r4", "application/fhir+json", "OperationOutcome", None
)
INTEROP = Service(
    "interop-4a",
    "互联互通 4A query services",
    "/interop/4a",
    "application/json",
    "Error",
    ErrorCode.SRV_INTERNAL,
)
MOUNTED = (FHIR, INTEROP)

_ERROR = {
    "type": "object",
    "description": "A catalogued error (docs/error-codes.md); never a patient value.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "name", "message", "param"],
            "properties": {
                "code": {"type": "string", "example": "LH-SRV-001"},
                "name": {"type": "string", "example": "SRV_REQUEST_INVALID"},
                "message": {"type": "string"},
                "param": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}
_OUTCOME = {
    "type": "object",
    "description": "A FHIR OperationOutcome whose issue carries the catalogued code "
    "(docs/error-codes.md) in details.coding; never a patient value.",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
}


def build_app() -> FastAPI:
    """The assistant app over inert stand-ins (no Spark, no files outside a temp dir)."""
    from serving.app import create_app
    from serving.assistant.lexicon import Lexicon

    with tempfile.TemporaryDirectory(prefix="lakehouse-openapi-") as tmp:
        cfg = load_settings(home=Path(tmp), data_dir=Path(tmp) / "var")
        stand_in = cast(Any, _SchemaOnly())
        return create_app(
            stand_in,
            cfg,
            identity=stand_in,
            access=stand_in,
            lexicon=Lexicon(),
            history=stand_in,
        )


def openapi_schemas(app: FastAPI | None = None) -> dict[str, dict[str, Any]]:
    """Service name -> its OpenAPI document, catalogued error responses filled in."""
    app = app or build_app()
    out = {ASSISTANT.name: _with_errors(app, app.openapi(), ASSISTANT)}
    mounted = {s.base: s for s in MOUNTED}
    for route in app.routes:
        service = mounted.get(getattr(route, "path", ""))
        if isinstance(route, Mount) and service is not None and isinstance(route.app, FastAPI):
            sub = route.app
            schema = _with_errors(sub, sub.openapi(), service)
            schema["servers"] = [{"url": service.base}]
            out[service.name] = schema
    return out


def openapi_documents() -> dict[str, str]:
    """Path under docs/ -> generated text: the OpenAPI files and docs/interfaces.md."""
    schemas = openapi_schemas()
    docs = {f"openapi/{name}.json": render_openapi(schema) for name, schema in schemas.items()}
    services = [(s.title, f"openapi/{s.name}.json", s.base) for s in (ASSISTANT, *MOUNTED)]
    docs["interfaces.md"] = render_interfaces(
        [(title, path, base, schemas[path[8:-5]]) for title, path, base in services]
    )
    return docs


def _with_errors(app: FastAPI, schema: dict[str, Any], service: Service) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {})
    schema["components"]["schemas"][service.error_schema] = (
        _OUTCOME if service.error_schema == "OperationOutcome" else _ERROR
    )
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    if not schema["components"]["schemas"]:
        del schema["components"]["schemas"]
    schema["components"]["securitySchemes"] = {
        "session": {
            "type": "http",
            "scheme": "bearer",
            "description": "The token of POST /api/login; the HttpOnly session cookie it "
            "sets works too (docs/assistant.md).",
        }
    }
    invalid = app.exception_handlers.get(RequestValidationError)
    for route in _api_routes(app):
        if not route.include_in_schema:
            continue
        codes = set(_raised(route.endpoint))
        signed_in = any(_gives_principal(d.call) for d in route.dependant.dependencies)
        if signed_in:
            codes.add(ErrorCode.SESSION_INVALID)
        if service.internal is not None:
            codes.add(service.internal)
        for method in sorted(route.methods or ()):
            op = schema["paths"][route.path_format][method.lower()]
            if signed_in:
                op["security"] = [{"session": []}]
            responses: dict[str, Any] = op.setdefault("responses", {})
            had_422 = responses.pop("422", None) is not None
            op_codes = set(codes)
            if had_422 and invalid is not None:
                op_codes |= set(_raised(invalid))
            elif had_422:
                responses["422"] = {"description": "Validation error (FastAPI's body)"}
            for status, group in _by_status(op_codes).items():
                responses[str(status)] = _response(service, group)
            responses["default"] = {
                "description": "Any other catalogued error (docs/error-codes.md), same body",
                "content": {service.media_type: {"schema": _ref(service)}},
            }
    return schema


def _api_routes(app: FastAPI) -> list[Any]:
    """The app's API routes, those of included routers too, with their full paths
    (FastAPI >= 0.16x keeps included routers as one entry of ``app.routes``)."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [ctx for ctx in iterate(app.routes) if isinstance(ctx.original_route, APIRoute)]


def _ref(service: Service) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{service.error_schema}"}


def _response(service: Service, codes: list[ErrorCode]) -> dict[str, Any]:
    return {
        "description": "; ".join(f"{c.id} {c.name}" for c in codes),
        "content": {service.media_type: {"schema": _ref(service)}},
    }


def _by_status(codes: set[ErrorCode]) -> dict[int, list[ErrorCode]]:
    out: dict[int, list[ErrorCode]] = {}
    for code in sorted(codes, key=lambda c: c.id):
        out.setdefault(code.value.http_status, []).append(code)
    return dict(sorted(out.items()))


def _gives_principal(call: Callable[..., Any] | None) -> bool:
    if call is None:
        return False
    try:
        hints = typing.get_type_hints(call)
    except (NameError, TypeError):
        return False
    return hints.get("return") is Principal


def _raised(
    fn: Callable[..., Any], seen: set[str] | None = None, *, follow: bool = True
) -> list[ErrorCode]:
    """Codes ``fn`` raises as far as its source shows: ``ErrorCode.X`` named in it (not in a
    comparison, which is a code being handled), in the functions of its own package it calls,
    and (one step, not further) in the methods of the services it calls, found through the
    type annotations of the objects it holds (``state.identity.login`` ->
    ``IdentityService.login``)."""
    seen = set() if seen is None else seen
    key = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
    if key in seen:
        return []
    seen.add(key)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    handled = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        for sub in ast.walk(node)
    }
    found: list[ErrorCode] = []
    package = str(getattr(fn, "__module__", "")).split(".")[0]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "ErrorCode"
            and node.attr in ErrorCode.__members__
            and id(node) not in handled
        ):
            found.append(ErrorCode[node.attr])
        elif isinstance(node, ast.Call) and follow:
            target = _callee(node.func, fn)
            if target is None:
                continue
            inside = target.__module__.split(".")[0] == package
            if inside or isinstance(node.func, ast.Attribute):
                found += _raised(target, seen, follow=inside)
    return found


def _names(fn: Callable[..., Any]) -> dict[str, Any]:
    """What the names in ``fn`` refer to: its module's globals and its closure."""
    names: dict[str, Any] = dict(getattr(fn, "__globals__", {}))
    with contextlib.suppress(TypeError, ValueError):
        names.update(inspect.getclosurevars(fn).nonlocals)
    return names


def _callee(func: ast.expr, fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function a call in ``fn`` names: ``f(...)``, ``Class.method(...)``,
    ``obj.attr.method(...)`` (attributes typed by annotations) or ``self.method(...)``."""
    chain: list[str] = []
    node = func
    while isinstance(node, ast.Attribute):
        chain.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names = _names(fn)
    owner: Any
    if node.id == "self" and "." in fn.__qualname__:
        owner = names.get(fn.__qualname__.split(".")[-2])
    else:
        owner = names.get(node.id)
    if not chain:
        target = owner
    else:
        cls = owner if inspect.isclass(owner) else type(owner)
        for attr in chain[:-1]:
            try:
                hint = typing.get_type_hints(cls).get(attr)
            except (NameError, TypeError, AttributeError):
                return None
            if not inspect.isclass(hint):
                return None
            cls = hint
        target = inspect.getattr_static(cls, chain[-1], None)
        if isinstance(target, (classmethod, staticmethod)):
            target = target.__func__
    return target if inspect.isfunction(target) else None
