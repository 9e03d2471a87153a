"""The audit log on Delta: chained appends, concurrent writers, tampering detected."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.audit import Action, AuditEvent, first_broken
from lakehouse.governance.audit_delta import DeltaAuditLog, require_intact, verify
from lakehouse.tables.audit.events import AUDIT_EVENTS


def _events(n: int, actor: str = "dr_a") -> list[AuditEvent]:
    return [AuditEvent(Action.READ, actor, target="silver.patients", row_count=i) for i in range(n)]


@pytest.fixture(scope="module")
def chained(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A log of 6 events written in three commits, with a head anchor."""
    import uuid

    spec = dataclasses.replace(AUDIT_EVENTS, name=f"audit.events_{uuid.uuid4().hex[:8]}")
    anchor = tmp_path_factory.mktemp("audit") / "head"
    log = DeltaAuditLog(spark, spec=spec, anchor=anchor)
    log.record(*_events(2))
    log.record(AuditEvent(Action.LOGIN_SUCCESS, "nurse_b"))
    log.record(*_events(3, "analyst_c"))
    return spec.name, anchor


def test_table_is_append_only_with_long_retention(
    spark: SparkSession, chained: tuple[str, Path]
) -> None:
    props = dict(spark.sql(f"SHOW TBLPROPERTIES {chained[0]}").collect())
    assert props["delta.appendOnly"] == "true"
    assert props["delta.enableChangeDataFeed"] == "true"
    assert props["delta.logRetentionDuration"] == "interval 180 days"
    assert props["delta.deletedFileRetentionDuration"] == "interval 180 days"
    with pytest.raises(Exception, match=r"(?i)append"):
        spark.sql(f"DELETE FROM {chained[0]} WHERE seq = 1")


def test_intact_chain_verifies_in_spark_and_matches_python_oracle(
    spark: SparkSession, chained: tuple[str, Path]
) -> None:
    name, anchor = chained
    spec = dataclasses.replace(AUDIT_EVENTS, name=name)
    report = require_intact(verify(spark, spec, anchor=anchor))
    assert (report.rows, report.broken_seq) == (6, None)
    rows = [r.asDict() for r in spark.table(name).collect()]
    assert first_broken(rows) is None
    assert sorted(r["seq"] for r in rows) == [1, 2, 3, 4, 5, 6]
    assert anchor.read_text().split()[0] == "6"


def _tampered(spark: SparkSession, name: str, unique: str, *statements: str) -> str:
    """An attacker with catalog rights on a shallow clone: lift appendOnly, then edit."""
    clone = f"{name}_t{unique}"
    spark.sql(f"CREATE TABLE {clone} SHALLOW CLONE {name}")
    spark.sql(f"ALTER TABLE {clone} SET TBLPROPERTIES ('delta.appendOnly' = 'false')")
    for sql in statements:
        spark.sql(sql.format(t=clone))
    return clone


@pytest.mark.parametrize(
    ("statements", "broken"),
    [
        pytest.param(["UPDATE {t} SET actor = 'someone_else' WHERE seq = 3"], 3, id="update"),
        pytest.param(["DELETE FROM {t} WHERE seq = 4"], 4, id="delete"),
        pytest.param(
            ["UPDATE {t} SET seq = CASE seq WHEN 2 THEN 5 WHEN 5 THEN 2 END WHERE seq IN (2, 5)"],
            2,
            id="reorder",
        ),
    ],
)
def test_tampering_is_detected(
    spark: SparkSession,
    chained: tuple[str, Path],
    unique: str,
    statements: list[str],
    broken: int,
) -> None:
    clone = _tampered(spark, chained[0], unique, *statements)
    report = verify(spark, dataclasses.replace(AUDIT_EVENTS, name=clone))
    assert report.broken_seq == broken
    with pytest.raises(LakehouseError) as exc:
        require_intact(report)
    assert exc.value.code is ErrorCode.AUDIT_CHAIN_BROKEN


def test_cut_tail_or_rewritten_chain_is_detected_by_the_head_anchor(
    spark: SparkSession, chained: tuple[str, Path], tmp_path: Path
) -> None:
    """The anchor outside the table remembers the head: a table that ends before it (cut
    tail) or holds another hash there (chain recomputed by an attacker) fails."""
    spec = dataclasses.replace(AUDIT_EVENTS, name=chained[0])
    seq, digest = chained[1].read_text().split()
    ahead = tmp_path / "ahead"
    ahead.write_text(f"{int(seq) + 1} {digest}\n")
    assert verify(spark, spec, anchor=ahead).broken_seq == int(seq) + 1
    other = tmp_path / "other"
    other.write_text(f"{seq} {'0' * 64}\n")
    assert verify(spark, spec, anchor=other).broken_seq == int(seq)


def test_concurrent_writers_keep_one_chain(spark: SparkSession, unique: str) -> None:
    """Two writers with separate locks (as two processes): stale heads and commit races are
    re-chained, so the chain has no fork, gap or duplicate."""
    spec = dataclasses.replace(AUDIT_EVENTS, name=f"audit.events_c{unique}")
    a = DeltaAuditLog(spark, spec=spec, lock=threading.Lock())
    b = DeltaAuditLog(spark, spec=spec, lock=threading.Lock())
    a.record(AuditEvent(Action.ADMIN, "admin"))  # a caches head 1
    b.record(AuditEvent(Action.ADMIN, "admin"))  # b appends 2: a's cached head is now stale
    a.record(*_events(3, "a"))  # a stale batch must insert all or nothing, then re-chain
    errors: list[BaseException] = []

    def write(log: DeltaAuditLog, actor: str) -> None:
        try:
            for _ in range(2):
                log.record(AuditEvent(Action.READ, actor))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(log, n)) for log, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = require_intact(verify(spark, spec))
    assert report.rows == 9
