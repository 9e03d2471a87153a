"""A local write-ahead journal in front of ``audit.events`` (docs/adr/0017).

A Delta commit takes seconds on a loaded machine; a service that committed one per read
could not answer a clinician within a second. :class:`JournaledAuditLog` makes an event
durable the way a database makes a transaction durable: :meth:`record` appends the events
to a local journal file and ``fsync``\\ s it before returning, so a read still returns its
rows only once its audit event is on disk (fail closed). A shipper thread then chains the
journaled events and commits them to the Delta log in batches (group commit: one commit
for everything that arrived meanwhile), through :class:`DeltaAuditLog`, which keeps the
hash chain and the head anchor exactly as for direct writes.

Crash safety. The journal holds one JSON line per event; a cursor file next to it holds
the byte offset up to which events are committed to Delta. On start, the lines after the
cursor are shipped first; a torn last line (the process died inside ``write``) was never
acknowledged and is cut off. An event that reached Delta just before a crash, before the
cursor moved, is recognised by its ``event_id`` and not stored twice. When everything is
shipped the journal is truncated.

Fail closed, also when Delta is down: events keep landing in the journal, but once the
oldest unshipped event is older than ``max_backlog_s``, :meth:`record` refuses
(``LH-SEC-009``), so reads stop until the audit table is writable again.

One journal per process (an exclusive ``flock``): a second process on the same file is
refused. Readers of ``audit.events`` see an event once it is shipped (``max_delay_s``
after it was recorded, plus the commit).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.audit import Action, AuditEvent
from lakehouse.governance.audit_delta import DeltaAuditLog, audit_log
from lakehouse.settings import Settings

logger = logging.getLogger(__name__)


def _line(event: AuditEvent) -> bytes:
    body: dict[str, Any] = {**asdict(event), "action": str(event.action)}
    body["ts"] = event.ts.isoformat()
    return json.dumps(body, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def _event(line: bytes) -> AuditEvent:
    body = json.loads(line)
    body["action"] = Action(body["action"])
    body["ts"] = datetime.fromisoformat(body["ts"])
    return AuditEvent(**body)


class JournaledAuditLog:
    """:class:`~lakehouse.governance.audit.AuditLog` that is durable on ``fsync`` of a
    local journal and ships to ``target`` (the Delta log) in batches."""

    def __init__(
        self,
        target: DeltaAuditLog,
        path: Path,
        *,
        max_delay_s: float = 0.5,
        max_batch: int = 5_000,
        max_backlog_s: float = 60.0,
    ) -> None:
        self.target, self.path = target, path
        self.max_delay_s, self.max_batch, self.max_backlog_s = max_delay_s, max_batch, max_backlog_s
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise error(
                ErrorCode.AUDIT_WRITE_FAILED,
                table=target.spec.name,
                reason="the audit journal is in use by another process",
            ) from None
        self._cursor_file = path.with_name(path.name + ".shipped")
        self._cond = threading.Condition()
        # Unshipped events: (event, monotonic time it was journaled, its bytes in the journal)
        self._pending: list[tuple[AuditEvent, float, int]] = []
        self._end = 0  # journal offset after the last pending event
        self._shipped = 0  # journal offset up to which events are in Delta
        self._closed = False
        self._flush_now = False
        self._failing: str | None = None  # why the last shipment failed (no PHI)
        self._recovered = self._recover()
        self._thread = threading.Thread(target=self._run, name="audit-shipper", daemon=True)
        self._thread.start()

    # -- the AuditLog protocol -------------------------------------------------------------
    def record(self, *events: AuditEvent) -> list[dict[str, Any]]:
        """Journal ``events`` durably (``fsync``); ``LH-SEC-009`` when that fails or the
        shipping backlog is older than ``max_backlog_s``."""
        lines = [_line(e) for e in events]
        data = b"".join(lines)
        with self._cond:
            if self._closed:
                raise self._refuse("the audit journal is closed")
            if self._pending and time.monotonic() - self._pending[0][1] > self.max_backlog_s:
                raise self._refuse(f"audit shipping is behind ({self._failing or 'slow'})")
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError as exc:
                logger.error("audit journal write failed: %s", type(exc).__name__)
                raise self._refuse(type(exc).__name__) from exc
            now = time.monotonic()
            self._pending.extend((e, now, len(b)) for e, b in zip(events, lines, strict=True))
            self._end += len(data)
            self._cond.notify_all()
        return [{**asdict(e), "action": str(e.action)} for e in events]

    # -- control ---------------------------------------------------------------------------
    def flush(self, timeout: float = 120.0) -> None:
        """Ship everything journaled so far now; ``LH-SEC-009`` if not done in ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._refuse(f"audit shipping is behind ({self._failing or 'slow'})")
                self._cond.wait(min(left, 0.5))

    def close(self, *, flush: bool = True, timeout: float = 120.0) -> None:
        """Stop the shipper (after shipping everything, unless ``flush`` is False: what a
        crash leaves behind, for tests) and release the journal."""
        if self._closed:
            return
        try:
            if flush:
                self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join(timeout)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)

    def backlog(self) -> tuple[int, float]:
        """(events not yet in Delta, age in seconds of the oldest of them)."""
        with self._cond:
            age = time.monotonic() - self._pending[0][1] if self._pending else 0.0
            return len(self._pending), age

    # -- internals -------------------------------------------------------------------------
    def _refuse(self, reason: str) -> Exception:
        return error(ErrorCode.AUDIT_WRITE_FAILED, table=self.target.spec.name, reason=reason)

    def _recover(self) -> int:
        """Queue the events a previous process journaled but did not ship."""
        size = os.fstat(self._fd).st_size
        try:
            cursor = int(self._cursor_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            cursor = 0
        if cursor > size:  # truncated after a complete shipment, cursor not yet rewritten
            cursor = 0
        with open(self.path, "rb") as f:
            f.seek(cursor)
            tail = f.read()
        complete = tail[: tail.rfind(b"\n") + 1] if b"\n" in tail else b""
        if len(complete) < len(tail):  # a torn last line was never acknowledged
            os.ftruncate(self._fd, cursor + len(complete))
            torn = len(tail) - len(complete)
            logger.warning("audit journal: cut a torn last line (%d bytes)", torn)
        now = time.monotonic()
        lines = complete.splitlines(keepends=True)
        self._pending = [(_event(line), now, len(line)) for line in lines if line.strip()]
        self._shipped, self._end = cursor, cursor + len(complete)
        if self._pending:
            logger.info("audit journal: %d unshipped event(s) from a previous run", len(lines))
        return len(self._pending)

    def _already_stored(self, events: list[AuditEvent]) -> set[str]:
        """Event ids of ``events`` that reached Delta before the cursor moved (recovery)."""
        spark, name = self.target.spark, self.target.spec.name
        since = min(e.ts for e in events)
        ids = [e.event_id for e in events]
        found = (
            spark.table(name)
            .where((F.col("ts") >= F.lit(since)) & F.col("event_id").isin(ids))
            .select("event_id")
            .collect()  # bounded: at most len(events) rows
        )
        return {str(r["event_id"]) for r in found}

    def _run(self) -> None:
        backoff = 0.5
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and (not self._pending or not self._flush_now):
                    return
                if not self._flush_now:
                    # Group commit: let a batch gather for max_delay_s after its first event.
                    wait = self.max_delay_s - (time.monotonic() - self._pending[0][1])
                    if wait > 0:
                        self._cond.wait(wait)
                batch = [e for e, _, _ in self._pending[: self.max_batch]]
            try:
                self._ship(batch)
            except Exception as exc:  # Delta down: keep the journal, retry, refuse when stale
                self._failing = type(exc).__name__
                logger.error("audit shipping failed (%s); retrying", self._failing)
                with self._cond:
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff, self._failing = 0.5, None
            with self._cond:
                self._done(len(batch))

    def _ship(self, batch: list[AuditEvent]) -> None:
        if self._recovered:
            stored = self._already_stored(batch[: self._recovered])
            if stored:
                logger.info("audit journal: %d event(s) were already in Delta", len(stored))
            batch = [e for e in batch if e.event_id not in stored]
        if batch:
            self.target.record(*batch)

    def _done(self, shipped: int) -> None:
        """Drop the first ``shipped`` pending events; move the cursor (under the lock)."""
        self._recovered = max(0, self._recovered - shipped)
        self._shipped += sum(n for _, _, n in self._pending[:shipped])
        del self._pending[:shipped]
        if not self._pending:
            # Everything is in Delta: start the journal afresh. Truncate first: a cursor
            # beyond the end of the file means "all shipped" on recovery.
            os.ftruncate(self._fd, 0)
            self._end = self._shipped = 0
            self._flush_now = False
        tmp = self._cursor_file.with_name(self._cursor_file.name + ".tmp")
        tmp.write_text(f"{self._shipped}\n")
        tmp.replace(self._cursor_file)
        self._cond.notify_all()


def journal_path(data_dir: Path, name: str) -> Path:
    """Where the journal of the service ``name`` is kept."""
    return data_dir / "audit" / "journal" / f"{name}.jsonl"


def service_audit_log(
    spark: SparkSession, cfg: Settings, name: str
) -> JournaledAuditLog | DeltaAuditLog:
    """The audit log of the long-running service ``name``: journaled unless
    ``security.audit_journal`` is off (then one Delta commit per event)."""
    log = audit_log(spark, cfg)
    if not cfg.security.audit_journal:
        return log
    return JournaledAuditLog(
        log,
        journal_path(cfg.data_dir, name),
        max_delay_s=cfg.security.audit_ship_delay_s,
        max_backlog_s=cfg.security.audit_max_backlog_s,
    )
