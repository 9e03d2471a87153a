"""The audit log's events and hash chain, independent of where the log is stored.

Every event is one row. Rows are chained: ``hash = H(prev_hash || canonical JSON of the
event)``, where the canonical JSON holds every column but the two hashes (the sequence
number included, so a reordering changes the hashes) and ``H`` is SM3 or SHA-256
(``security.hash_algorithm``). Changing, deleting or reordering a row breaks the chain at
that row. :class:`MemoryAuditLog` is the in-process store (tests, dry runs);
:class:`lakehouse.governance.audit_delta.DeltaAuditLog` is the ``audit.events`` table.

Fail closed: :func:`audited` runs a read and returns its result only once the event has
been recorded; if recording fails the caller gets ``LH-SEC-009`` instead of the data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from lakehouse.errors import ErrorCode, LakehouseError, error

T = TypeVar("T")
GENESIS = "0" * 64
CHAIN_COLUMNS = ("prev_hash", "hash")


class Action(StrEnum):
    """What an audit event records."""

    LOGIN_SUCCESS = "login_success"
    LOGIN_FAILURE = "login_failure"
    LOCKOUT = "lockout"
    LOGOUT = "logout"
    PERMISSION_CHANGE = "permission_change"
    READ = "read"
    ACCESS_DENIED = "access_denied"
    EXPORT = "export"
    ADMIN = "admin"
    BREAK_GLASS = "break_glass"


@dataclass(frozen=True)
class AuditEvent:
    """One event before it is chained (the columns of ``audit.events`` but seq and hashes)."""

    action: Action
    actor: str
    outcome: str = "allowed"
    role: str | None = None
    session_id: str | None = None
    target: str | None = None
    patient_ref: str | None = None
    purpose: str | None = None
    row_count: int | None = None
    versions: str | None = None
    break_glass: bool = False
    reason: str | None = None
    detail: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))


def hash_bytes(algorithm: str, data: bytes) -> str:
    """Hex digest of ``data`` with ``sm3`` (OpenSSL's, via hashlib) or ``sha256``."""
    return hashlib.new(algorithm, data).hexdigest()


def to_micros(ts: datetime) -> int:
    """A timestamp as integer microseconds since the epoch. A naive one is the process's
    local time, as PySpark returns a collected ``TIMESTAMP`` (``datetime.fromtimestamp``;
    the process runs in the hospital's zone, ``lakehouse.environment.use_hospital_zone``)."""
    if ts.tzinfo is None:
        ts = ts.astimezone(UTC)
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def canonical(row: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a row: every column but the hashes, ``ts`` as epoch microseconds."""
    body = {k: v for k, v in row.items() if k not in CHAIN_COLUMNS}
    ts = body.pop("ts")
    body["ts"] = ts if isinstance(ts, int) else to_micros(ts)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(algorithm: str, prev_hash: str, row: Mapping[str, Any]) -> str:
    """The hash of ``row`` chained to ``prev_hash``."""
    return hash_bytes(algorithm, prev_hash.encode("ascii") + canonical(row))


def chain(
    events: Sequence[AuditEvent], head: tuple[int, str], algorithm: str
) -> list[dict[str, Any]]:
    """Rows for ``events`` chained after ``head`` = (seq, hash) of the last stored row."""
    seq, prev = head
    rows = []
    for event in events:
        seq += 1
        row: dict[str, Any] = {**asdict(event), "action": str(event.action), "seq": seq}
        row["hash_alg"] = algorithm
        row["prev_hash"] = prev
        row["hash"] = prev = link(algorithm, prev, row)
        rows.append(row)
    return rows


def first_broken(rows: Iterable[Mapping[str, Any]]) -> tuple[int, str] | None:
    """(seq, reason) of the first break in ``rows`` (any order), or None: the Python oracle."""
    ordered = sorted(rows, key=lambda r: int(r["seq"]))
    prev_seq, prev_hash = 0, GENESIS
    for row in ordered:
        seq = int(row["seq"])
        if seq != prev_seq + 1:
            return prev_seq + 1, "a row is missing or duplicated"
        if row["prev_hash"] != prev_hash:
            return seq, "prev_hash does not match the previous row"
        if link(str(row["hash_alg"]), prev_hash, row) != row["hash"]:
            return seq, "the row's content does not match its hash"
        prev_seq, prev_hash = seq, str(row["hash"])
    return None


def patient_ref(key: bytes, patient_id: str) -> str:
    """Keyed pseudonym of a patient id (HMAC-SHA256): stable, not reversible without the key."""
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()


class AuditLog(Protocol):
    """Where audit events go. ``record`` returns the chained rows or raises ``LH-SEC-009``."""

    def record(self, *events: AuditEvent) -> list[dict[str, Any]]: ...


class MemoryAuditLog:
    """An in-process chained log (tests and dry runs); ``fail`` simulates a broken store."""

    def __init__(self, algorithm: str = "sm3") -> None:
        self.algorithm = algorithm
        self.rows: list[dict[str, Any]] = []
        self.fail = False
        self._lock = threading.Lock()

    def record(self, *events: AuditEvent) -> list[dict[str, Any]]:
        with self._lock:
            if self.fail:
                raise error(ErrorCode.AUDIT_WRITE_FAILED, table="memory", reason="store down")
            head = (self.rows[-1]["seq"], self.rows[-1]["hash"]) if self.rows else (0, GENESIS)
            rows = chain(events, head, self.algorithm)
            self.rows.extend(rows)
            return rows

    def actions(self) -> list[str]:
        return [str(r["action"]) for r in self.rows]


def record_or_refuse(log: AuditLog, event: AuditEvent) -> None:
    """Record ``event``; any failure becomes ``LH-SEC-009`` (the caller must not proceed)."""
    _record_all(log, [event])


def audited(
    log: AuditLog, events: Sequence[AuditEvent], read: Callable[[], Sequence[T]]
) -> list[T]:
    """Run ``read``, record ``events`` with its row count, and only then return the rows.

    The rows never reach the caller when the audit write fails (fail closed). A read that
    raises is recorded as ``failed`` before the exception propagates.
    """
    try:
        rows = list(read())
    except Exception as exc:  # any failure of the read is on the record, then re-raised
        reason = exc.code.id if isinstance(exc, LakehouseError) else type(exc).__name__
        _record_all(log, [replace(e, outcome="failed", reason=reason) for e in events])
        raise
    _record_all(log, [replace(e, row_count=len(rows)) for e in events])
    return rows


def _record_all(log: AuditLog, events: Sequence[AuditEvent]) -> None:
    try:
        log.record(*events)
    except LakehouseError as exc:
        if exc.code is ErrorCode.AUDIT_WRITE_FAILED:
            raise
        raise error(ErrorCode.AUDIT_WRITE_FAILED, table="audit", reason=exc.code.id) from exc
    except Exception as exc:
        raise error(ErrorCode.AUDIT_WRITE_FAILED, table="audit", reason=type(exc).__name__) from exc
