"""The console's figures for a signed-in user: who may see which panel, a short cache, and
an audit event for every read.

:class:`Console` reads each panel (:mod:`serving.console.figures`) at most once per
``console.cache_ttl_s`` however many users, pages and Prometheus scrapes ask (one lock per
panel, so concurrent first requests wait for one read instead of each running it; an
expired reading is answered while one background thread reads it again); a failure is
cached the same way, as the panel's catalogued code, and never fails the other panels.

Only the ``admin`` and ``auditor`` roles use the console (``LH-SEC-006`` otherwise, itself
audited as ``access_denied``). A panel whose source is a table follows the access policy:
the data-quality panel needs a read grant on ``dq.results`` (admins have one, auditors do
not), the runs and backup panels one on ``ops.job_runs``. The audit-alert panel holds
counts and times per day only (no actor, no patient pseudonym), which the service
aggregates itself for both roles, as it does the patient directory lookup of
:mod:`lakehouse.governance.access`; the events themselves stay readable to auditors only.

Each answer is recorded as a ``read`` event (purpose ``operations``, target the panel's
sources, row count the rows of the answer) before it is returned (fail closed,
``LH-SEC-009``), cached or not: the audit log shows who looked at what, not what was
recomputed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import Action, AuditEvent, AuditLog, audited, record_or_refuse
from lakehouse.governance.policy import Policy
from lakehouse.governance.sessions import Principal
from lakehouse.settings import Settings
from serving.console import figures
from serving.console.figures import ConsoleTables

logger = logging.getLogger(__name__)

PURPOSE = "operations"
#: Purpose of an auditor's read of the break-glass events themselves.
REVIEW = "audit review"
MAX_BREAK_GLASS = 50
ROLES = ("admin", "auditor")
#: The panels, in page order.
PANELS = ("runs", "tables", "quality", "backups", "standby", "models", "alerts", "health")


@dataclass(frozen=True)
class Panel:
    """One panel: what it reads (audit target) and the table whose read grant it needs."""

    name: str
    sources: Callable[[ConsoleTables], tuple[str, ...]]
    grant: Callable[[ConsoleTables], str | None]


def _panels() -> dict[str, Panel]:
    return {
        p.name: p
        for p in (
            Panel("runs", lambda t: (t.job_runs,), lambda t: t.job_runs),
            Panel("tables", lambda t: ("catalog",), lambda t: None),
            Panel("quality", lambda t: (t.dq_results,), lambda t: t.dq_results),
            Panel("backups", lambda t: ("backups", t.job_runs), lambda t: t.job_runs),
            Panel("standby", lambda t: ("standby",), lambda t: None),
            Panel("models", lambda t: ("mlflow",), lambda t: None),
            Panel("alerts", lambda t: (f"{t.audit_events}(counts per day)",), lambda t: None),
            Panel("health", lambda t: ("health",), lambda t: None),
        )
    }


@dataclass
class _Entry:
    at: float
    value: dict[str, Any]


class Console:
    """The console's panels over one Spark session, cached for ``console.cache_ttl_s``."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: Settings,
        audit: AuditLog,
        policy: Policy,
        tables: ConsoleTables | None = None,
        *,
        access: AccessService | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spark, self.cfg, self.audit, self.policy = spark, cfg, audit, policy
        self.access = access
        self.tables = tables or ConsoleTables()
        self.clock = clock
        self.panels = _panels()
        self._cache: dict[str, _Entry] = {}
        self._locks = {name: threading.Lock() for name in PANELS}
        self._refreshing: set[str] = set()
        #: Reads of each panel's source since the process started (tests, the docs' figures).
        self.reads = dict.fromkeys(PANELS, 0)

    # --- who may see what ------------------------------------------------------------
    def require_console(self, who: Principal) -> None:
        """``LH-SEC-006`` (and an ``access_denied`` event) unless ``who`` is admin/auditor."""
        if who.role not in ROLES:
            self._refuse(who, "the operations console", "only the admin and auditor roles")

    def _refuse(self, who: Principal, table: str, reason: str) -> None:
        exc = error(
            ErrorCode.ACCESS_DENIED, role=who.role, operation="read", table=table, reason=reason
        )
        record_or_refuse(
            self.audit,
            AuditEvent(
                Action.ACCESS_DENIED,
                who.username,
                outcome="denied",
                role=who.role,
                session_id=who.session_id,
                target=table,
                purpose=PURPOSE,
                reason=exc.code.id,
            ),
        )
        raise exc

    def allowed(self, who: Principal, name: str) -> bool:
        grant = self.panels[name].grant(self.tables)
        return grant is None or self.policy.may_read(who.role, grant)

    # --- reads -------------------------------------------------------------------------
    def read(self, who: Principal, name: str) -> dict[str, Any]:
        """Panel ``name`` for ``who``: refused, or cached/read and audited."""
        self.require_console(who)
        panel = self.panels[name]
        if not self.allowed(who, name):
            self._refuse(who, str(panel.grant(self.tables)), "no read grant")
        value = self.figure(name)
        event = AuditEvent(
            Action.READ,
            who.username,
            role=who.role,
            session_id=who.session_id,
            target=",".join(panel.sources(self.tables)),
            purpose=PURPOSE,
            detail=f"console:{name}",
        )
        audited(self.audit, [event], lambda: [value] * _rows(value))
        return _public(value)

    def figure(self, name: str) -> dict[str, Any]:
        """Panel ``name`` from the cache: ``{"panel", "status": ok|error, "read_at",
        "age_s", "data" | "code", "message"}``. The first read waits for the source; a
        reading older than ``console.cache_ttl_s`` is still answered while one background
        thread reads the source again (a scrape or a page never waits for Spark once the
        panel has been read). A TTL of 0 reads on every call."""
        ttl = self.cfg.console.cache_ttl_s
        with self._locks[name]:
            entry = self._cache.get(name)
            now = self.clock()
            if entry is None or ttl == 0:
                entry = _Entry(now, self._compute(name))
                self._cache[name] = entry
            elif now - entry.at > ttl and name not in self._refreshing:
                self._refreshing.add(name)
                threading.Thread(
                    target=self._refresh, args=(name,), name=f"console-{name}", daemon=True
                ).start()
        return {**entry.value, "age_s": round(max(0.0, self.clock() - entry.at), 3)}

    def warm(self) -> threading.Thread:
        """Read every panel once in a background thread (``lakehouse serve`` at start), so the
        first page or Prometheus scrape finds them cached instead of waiting for Spark."""

        def run() -> None:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(len(PANELS), thread_name_prefix="console-warm") as pool:
                list(pool.map(self.figure, PANELS))
            logger.info("console panels read in %.1f s", time.perf_counter() - t0)

        thread = threading.Thread(target=run, name="console-warm", daemon=True)
        thread.start()
        return thread

    def _refresh(self, name: str) -> None:
        try:
            value = self._compute(name)
            with self._locks[name]:
                self._cache[name] = _Entry(self.clock(), value)
        finally:
            with self._locks[name]:
                self._refreshing.discard(name)

    def _compute(self, name: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.reads[name] += 1
        out: dict[str, Any] = {"panel": name, "read_at": time.time()}
        try:
            out["data"] = self._source(name)()
            out["status"] = "ok"
        except LakehouseError as exc:
            out.update(status="error", code=exc.code.id, message=exc.render())
        except Exception as exc:  # a source's own failure: catalogued, type only (no values)
            wrapped = error(ErrorCode.CONSOLE_SOURCE_FAILED, name=name, reason=type(exc).__name__)
            out.update(status="error", code=wrapped.code.id, message=wrapped.render())
        out["read_s"] = round(time.perf_counter() - t0, 3)
        if out["status"] != "ok":
            logger.warning("console panel %s: %s", name, out["code"])
        return out

    def _source(self, name: str) -> Callable[[], dict[str, Any]]:
        spark, cfg, t, c = self.spark, self.cfg, self.tables, self.cfg.console
        sources: dict[str, Callable[[], dict[str, Any]]] = {
            "runs": lambda: figures.runs(spark, t.job_runs, days=c.runs_days),
            "tables": lambda: figures.tables(spark, c.schemas, max_tables=c.max_tables),
            "quality": lambda: figures.quality(spark, t.dq_results, runs_n=c.dq_runs),
            "backups": lambda: figures.backups(spark, cfg, t.job_runs),
            "standby": lambda: figures.standby(cfg),
            "models": lambda: figures.models(cfg),
            "alerts": lambda: figures.alerts(spark, t.audit_events, days=c.alert_days),
            "health": lambda: figures.health(spark, cfg),
        }
        return sources[name]

    def break_glass_events(self, who: Principal) -> dict[str, Any]:
        """The newest break-glass events with actor, reason and patient pseudonym, for
        auditors only: read through the guarded, audited path (the auditor's own grant on
        the audit table, never cached)."""
        if who.role != "auditor" or self.access is None:
            self._refuse(who, self.tables.audit_events, "break-glass events are the auditors'")
        assert self.access is not None
        # The table name is the service's own (ConsoleTables), never a request's.
        sql = (
            "SELECT ts, actor, role, outcome, reason, patient_ref "  # noqa: S608
            f"FROM {self.tables.audit_events} WHERE action = 'break_glass' "
            f"ORDER BY ts DESC LIMIT {MAX_BREAK_GLASS}"
        )
        rows = self.access.query(
            who,
            sql,
            purpose=REVIEW,
            limit=MAX_BREAK_GLASS,
        )
        events = [{**r.asDict(), "ts": r["ts"].timestamp()} for r in rows]
        return {"events": events, "limit": MAX_BREAK_GLASS}

    def scrape(self, actor: str, who: Principal | None = None) -> dict[str, dict[str, Any]]:
        """Every panel for a Prometheus scrape (cached like the page's), audited as one
        read by ``actor`` (the scraper or the signed-in admin)."""
        # Panels read in parallel (each under its own lock): a cold scrape takes as long as
        # the slowest source, not the sum of them.
        with ThreadPoolExecutor(max_workers=len(PANELS), thread_name_prefix="console") as pool:
            values = dict(zip(PANELS, pool.map(self.figure, PANELS), strict=True))
        event = AuditEvent(
            Action.READ,
            actor,
            role=None if who is None else who.role,
            session_id=None if who is None else who.session_id,
            target=",".join(s for p in self.panels.values() for s in p.sources(self.tables)),
            purpose=PURPOSE,
            detail="console:metrics",
        )
        audited(self.audit, [event], lambda: [1] * sum(_rows(v) for v in values.values()))
        return values


def _rows(value: dict[str, Any]) -> int:
    """Rows of a panel's answer (the audit event's row count)."""
    data = value.get("data")
    if not isinstance(data, dict):
        return 0
    lists = [v for v in data.values() if isinstance(v, list)]
    return sum(len(v) for v in lists) if lists else 1


def _public(value: dict[str, Any]) -> dict[str, Any]:
    """A panel as the JSON endpoint answers it (the standby's raw status stays inside)."""
    data = value.get("data")
    if isinstance(data, dict) and "raw" in data:
        value = {**value, "data": {k: v for k, v in data.items() if k != "raw"}}
    return value
