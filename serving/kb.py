"""Knowledge-base endpoints: ``GET /api/kb/search``, ``/api/kb/tree``, ``/api/kb/doc``.

:func:`mount_knowledge` adds them to the app built by :func:`serving.app.create_app`, with
the app's own sign-in dependency, so the same bearer token or session cookie applies. The
routes are added to the app itself (not through ``include_router``) so that the OpenAPI
generator (:mod:`serving.openapi`) sees them like the app's other routes. Results, the tree
and documents are limited to the folders the user may read (docs/knowledge-base.md).

Every search and document read is a ``read`` audit event recorded before the answer is
returned (fail closed: ``LH-SEC-009``). A query may name a patient, so the event holds no
query text: only its length and a keyed hash (HMAC-SHA256 with a key made per process),
which ties repeated searches together within one service run and reveals nothing else.
"""

# No ``from __future__ import annotations``: FastAPI must see the routes' ``Annotated``
# dependency (a local of the factory) as an object, not a string.
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query

from lakehouse.governance.audit import Action, AuditEvent, AuditLog, audited
from lakehouse.governance.sessions import Principal
from lakehouse.knowledge import KbHit, KnowledgeBase
from lakehouse.search.query import MAX_QUERY_CHARS

PURPOSE = "knowledge"


def kb_event(who: Principal, target: str, detail: str | None = None) -> AuditEvent:
    """The ``read`` audit event of a knowledge-base search (``kb:search``) or document read
    (``kb:<path>``); the assistant's knowledge retrieval records the same."""
    return AuditEvent(
        Action.READ,
        who.username,
        role=who.role,
        session_id=who.session_id,
        target=target,
        purpose=PURPOSE,
        detail=detail,
    )


def query_detail(key: bytes, query: str) -> str:
    """A search's audit detail: the query's keyed hash and length, never its text."""
    digest = hmac.new(key, query.encode(), hashlib.sha256).hexdigest()[:32]
    return f"query_hmac={digest} query_chars={len(query)}"


def mount_knowledge(
    app: FastAPI, kb: KnowledgeBase, audit: AuditLog, principal: Callable[..., Principal]
) -> None:
    """Add the ``/api/kb`` routes over ``kb``; ``principal`` is the app's sign-in dependency."""
    user = Annotated[Principal, Depends(principal)]
    key = secrets.token_bytes(32)

    event = kb_event

    @app.get("/api/kb/search")
    def kb_search(
        who: user,
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
        offset: Annotated[int, Query(ge=0, le=1000)] = 0,
    ) -> dict[str, Any]:
        found: dict[str, int] = {}

        def run() -> list[KbHit]:
            found["total"], hits = kb.search(who, q, limit=limit, offset=offset)
            return hits

        detail = query_detail(key, q)
        hits = audited(audit, [event(who, "kb:search", detail)], run)
        return {"total": found["total"], "hits": [h.to_dict() for h in hits]}

    @app.get("/api/kb/tree")
    def kb_tree(who: user) -> dict[str, Any]:
        return kb.tree(who)

    @app.get("/api/kb/doc")
    def kb_doc(
        who: user, path: Annotated[str, Query(min_length=1, max_length=1000)]
    ) -> dict[str, Any]:
        target = "/".join(kb.parts(path))  # LH-KNB-001 before anything is read or logged
        docs = audited(audit, [event(who, f"kb:{target}")], lambda: [kb.read(who, target)])
        d = docs[0]
        return {"path": d.path, "title": d.title, "kind": d.kind, "text": d.text}
