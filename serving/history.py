"""Per-user chat history of the assistant: each question and the answer it got.

A small SQLite file (default ``<data_dir>/serving/history.db``, mode 0600), like the
accounts file (ADR 0006): the page lists it on every load and must not wait for a Spark
job. The service writes an entry when it answers (``POST /api/ask``), so the history is
exactly what was answered; users cannot write entries themselves.

History is PHI-bearing (questions name patients, answers carry values), so:

- every method takes the signed-in :class:`Principal` and touches that user's rows only;
  no endpoint takes a username;
- every listing is a ``read`` audit event (``target="serving.history"``, its row count),
  recorded before the rows are returned: an audit write that fails returns nothing
  (``LH-SEC-009``); clearing one's history is an ``admin`` event;
- a user keeps at most ``keep`` entries (the oldest go first).

Entries are not re-checked against the user's current scope: a clinician moved to another
department still sees the answers given to them before (as they would in their own notes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.governance.audit import Action, AuditEvent, AuditLog, audited, record_or_refuse
from lakehouse.governance.sessions import Principal

TARGET = "serving.history"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chat_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    question TEXT NOT NULL,
    patient TEXT,
    answer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_history_user ON chat_history (username, id);
"""


class ChatHistory:
    """The questions and answers of each user, newest first."""

    def __init__(self, db: Path, audit: AuditLog, *, keep: int = 200) -> None:
        self.db, self.audit, self.keep = Path(db), audit, keep
        self._lock = threading.Lock()
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)
        os.chmod(self.db, 0o600)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.db, timeout=10)
        try:
            with con:  # one transaction
                yield con
        finally:
            con.close()

    def add(
        self, who: Principal, question: str, patient: str | None, answer: dict[str, Any]
    ) -> int:
        """Store one answered question; returns its id. Keeps the user's newest ``keep``."""
        asked_at = datetime.now(UTC).isoformat(timespec="seconds")
        body = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
        with self._lock, self._connect() as con:
            cur = con.execute(
                "INSERT INTO chat_history (username, asked_at, question, patient, answer) "
                "VALUES (?, ?, ?, ?, ?)",
                (who.username, asked_at, question, patient, body),
            )
            con.execute(
                "DELETE FROM chat_history WHERE username = ? AND id NOT IN "
                "(SELECT id FROM chat_history WHERE username = ? ORDER BY id DESC LIMIT ?)",
                (who.username, who.username, self.keep),
            )
            return int(cur.lastrowid or 0)

    def entries(self, who: Principal, limit: int = 50) -> list[dict[str, Any]]:
        """The user's newest ``limit`` entries, audited as a read of ``serving.history``."""

        def read() -> list[dict[str, Any]]:
            with self._connect() as con:
                rows = con.execute(
                    "SELECT id, asked_at, question, patient, answer FROM chat_history "
                    "WHERE username = ? ORDER BY id DESC LIMIT ?",
                    (who.username, limit),
                ).fetchall()
            return [
                {
                    "id": r[0],
                    "asked_at": r[1],
                    "question": r[2],
                    "patient": r[3],
                    "answer": json.loads(r[4]),
                }
                for r in rows
            ]

        event = AuditEvent(
            Action.READ,
            who.username,
            role=who.role,
            session_id=who.session_id,
            target=TARGET,
            purpose="treatment",
        )
        return audited(self.audit, [event], read)

    def clear(self, who: Principal) -> int:
        """Delete the user's history (audited first: no audit, no delete); returns the count."""
        record_or_refuse(
            self.audit,
            AuditEvent(
                Action.ADMIN,
                who.username,
                role=who.role,
                session_id=who.session_id,
                target=TARGET,
                detail="history cleared by its owner",
            ),
        )
        with self._lock, self._connect() as con:
            cur = con.execute("DELETE FROM chat_history WHERE username = ?", (who.username,))
            return cur.rowcount
