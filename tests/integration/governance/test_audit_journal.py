"""The audit journal in front of audit.events: durable on fsync, shipped in batches to the
real Delta log, recovered after a crash without loss or duplicates, fail closed."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.audit import Action, AuditEvent, first_broken
from lakehouse.governance.audit_delta import DeltaAuditLog
from lakehouse.governance.audit_journal import JournaledAuditLog
from lakehouse.tables.audit.events import AUDIT_EVENTS


class DownLog:
    """A Delta log that cannot be written (the audit table's storage is down)."""

    def __init__(self, real: DeltaAuditLog) -> None:
        self.spark, self.spec = real.spark, real.spec

    def record(self, *events: AuditEvent) -> list[dict[str, Any]]:
        raise OSError("storage unreachable")


def _events(n: int, actor: str) -> list[AuditEvent]:
    return [AuditEvent(Action.READ, actor, target="silver.patient", row_count=i) for i in range(n)]


@pytest.fixture(scope="module")
def delta(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> DeltaAuditLog:
    spec = dataclasses.replace(AUDIT_EVENTS, name=f"audit.events_j{uuid.uuid4().hex[:8]}")
    return DeltaAuditLog(spark, spec=spec, anchor=tmp_path_factory.mktemp("anchor") / "head")


def _stored(spark: SparkSession, log: DeltaAuditLog) -> list[dict[str, Any]]:
    return [r.asDict() for r in spark.table(log.spec.name).collect()]


def test_concurrent_reads_share_commits_and_the_chain_holds(
    spark: SparkSession, delta: DeltaAuditLog, tmp_path: Path
) -> None:
    before = len(_stored(spark, delta))
    versions = spark.sql(f"DESCRIBE HISTORY {delta.spec.name}").count()
    journal = JournaledAuditLog(delta, tmp_path / "serve.jsonl", max_delay_s=1.0)
    try:
        workers = [
            threading.Thread(target=lambda i=i: journal.record(*_events(3, f"user{i}")))
            for i in range(8)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        journal.flush()
        assert journal.backlog() == (0, 0.0)
    finally:
        journal.close()
    rows = _stored(spark, delta)
    assert len(rows) == before + 24
    assert first_broken(rows) is None  # the Python oracle of `lakehouse audit verify`
    assert delta.anchor is not None
    assert delta.anchor.read_text().split()[0] == str(max(r["seq"] for r in rows))
    commits = spark.sql(f"DESCRIBE HISTORY {delta.spec.name}").count() - versions
    assert 1 <= commits < 8  # group commit: fewer commits than the eight concurrent reads
    assert (tmp_path / "serve.jsonl").stat().st_size == 0  # truncated once all is shipped


def test_a_crash_loses_nothing_and_stores_nothing_twice(
    spark: SparkSession, delta: DeltaAuditLog, tmp_path: Path
) -> None:
    path = tmp_path / "serve.jsonl"
    # A process journals four events while Delta is down, then dies (nothing shipped).
    first = JournaledAuditLog(DownLog(delta), path, max_delay_s=0.05)  # type: ignore[arg-type]
    events = _events(4, "crash")
    first.record(*events[:2])
    first.record(*events[2:])
    first.close(flush=False)
    # One of them had reached Delta just before the crash (the cursor had not moved yet),
    # and the process was killed inside the write of a fifth event (a torn last line).
    delta.record(events[0])
    with path.open("ab") as f:
        f.write(b'{"action": "read", "actor": "torn')
    again = JournaledAuditLog(delta, path, max_delay_s=0.05)
    try:
        again.flush()
    finally:
        again.close()
    ids = [r["event_id"] for r in _stored(spark, delta)]
    for e in events:
        assert ids.count(e.event_id) == 1
    assert not [r for r in _stored(spark, delta) if r["actor"] == "torn"]
    assert first_broken(_stored(spark, delta)) is None


def test_reads_are_refused_when_shipping_falls_behind(delta: DeltaAuditLog, tmp_path: Path) -> None:
    journal = JournaledAuditLog(
        DownLog(delta),  # type: ignore[arg-type]
        tmp_path / "serve.jsonl",
        max_delay_s=0.01,
        max_backlog_s=0.3,
    )
    try:
        journal.record(*_events(1, "early"))  # durable in the journal: allowed
        time.sleep(0.5)
        with pytest.raises(LakehouseError) as err:
            journal.record(*_events(1, "late"))
        assert err.value.code is ErrorCode.AUDIT_WRITE_FAILED
        assert "behind" in str(err.value)
    finally:
        journal.close(flush=False)


def test_one_process_per_journal(delta: DeltaAuditLog, tmp_path: Path) -> None:
    path = tmp_path / "serve.jsonl"
    journal = JournaledAuditLog(DownLog(delta), path)  # type: ignore[arg-type]
    try:
        with pytest.raises(LakehouseError) as err:
            JournaledAuditLog(delta, path)
        assert err.value.code is ErrorCode.AUDIT_WRITE_FAILED
    finally:
        journal.close(flush=False)
    with pytest.raises(LakehouseError):
        journal.record(*_events(1, "after close"))
