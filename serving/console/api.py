"""The console's routes: the page at ``/console``, one JSON endpoint per panel under
``/api/console``, and ``GET /metrics`` for Prometheus.

:func:`mount_console` adds them to the app of :func:`serving.app.create_app` with the app's
own sign-in dependency (bearer token or the session cookie), like :mod:`serving.kb`: the
routes are added to the app itself so that the OpenAPI generator sees them.

``/metrics`` takes ``Authorization: Bearer <token>``: the token of
``console.metrics_token_file`` (Prometheus' ``bearer_token_file``; the scrape is audited as
actor ``prometheus``) or the session token of a signed-in admin; anything else is
``LH-CON-002``.
"""

# No ``from __future__ import annotations``: FastAPI must see the routes' ``Annotated``
# dependency (a local of the factory) as an object, not a string.
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.sessions import Principal
from serving.console.metrics import CONTENT_TYPE, render
from serving.console.service import PANELS, Console

WEB = Path(__file__).parent / "web"
SCRAPER = "prometheus"


def mount_console(
    app: FastAPI,
    console: Console,
    principal: Callable[..., Principal],
    session: Callable[[str], Principal],
) -> None:
    """Add the console's page, panel endpoints and ``/metrics``; ``principal`` is the app's
    sign-in dependency, ``session`` turns a bearer token into its principal."""
    user = Annotated[Principal, Depends(principal)]

    @app.get("/console", include_in_schema=False)
    def console_page() -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/console/static", StaticFiles(directory=WEB), name="console-static")

    @app.get("/api/console")
    def console_index(who: user) -> dict[str, Any]:
        """The panels of the console and whether the signed-in role may see each."""
        console.require_console(who)
        return {
            "role": who.role,
            "panels": [{"panel": p, "allowed": console.allowed(who, p)} for p in PANELS],
            "break_glass_events": who.role == "auditor" and console.access is not None,
            "cache_ttl_s": console.cfg.console.cache_ttl_s,
        }

    for name in PANELS:
        _panel_route(app, console, user, name)

    @app.get("/api/console/break-glass")
    def console_break_glass(who: user) -> dict[str, Any]:
        """The newest break-glass events (auditors only, through the guarded read path)."""
        return console.break_glass_events(who)

    @app.get("/metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus text format of every panel (docs/operations.md, Console and metrics)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise error(ErrorCode.CONSOLE_METRICS_UNAUTHORIZED, reason="no bearer token")
        expected = _metrics_token(console)
        if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
            panels = console.scrape(SCRAPER)
        else:
            try:
                who = session(token)
            except LakehouseError:
                raise error(
                    ErrorCode.CONSOLE_METRICS_UNAUTHORIZED,
                    reason="neither the metrics token nor a valid session",
                ) from None
            if who.role != "admin":
                console.require_console(who)  # LH-SEC-006 for the roles outside the console
                raise error(
                    ErrorCode.CONSOLE_METRICS_UNAUTHORIZED, reason=f"role {who.role} is not admin"
                )
            panels = console.scrape(who.username, who)
        return Response(render(panels, console.cfg), media_type=CONTENT_TYPE)


def _panel_route(app: FastAPI, console: Console, user: Any, name: str) -> None:
    def panel(who: user) -> dict[str, Any]:
        return console.read(who, name)

    panel.__name__ = f"console_{name}"
    panel.__doc__ = f"The console's {name} panel (docs/operations.md, Console and metrics)."
    app.get(f"/api/console/{name}", name=f"console_{name}")(panel)


def _metrics_token(console: Console) -> str | None:
    path = console.cfg.console.metrics_token_file
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        raise error(
            ErrorCode.CONSOLE_METRICS_UNAUTHORIZED, reason="the metrics token file cannot be read"
        ) from None
    return text or None
