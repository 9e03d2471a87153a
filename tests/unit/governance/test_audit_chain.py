"""The hash chain in pure Python: any single change, deletion or reordering is detected."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.audit import (
    GENESIS,
    Action,
    AuditEvent,
    MemoryAuditLog,
    audited,
    canonical,
    first_broken,
    hash_bytes,
    patient_ref,
)
from lakehouse.governance.keys import pseudonym_key, secret_key, session_key
from lakehouse.settings import Settings
from lakehouse.tables.audit.events import AUDIT_EVENTS


def _log(n: int, algorithm: str = "sm3") -> MemoryAuditLog:
    log = MemoryAuditLog(algorithm)
    for i in range(n):
        log.record(AuditEvent(Action.READ, f"user{i}", target="silver.patients", row_count=i))
    return log


def test_sm3_is_the_standard_one() -> None:
    # GB/T 32905-2016 appendix A.1: SM3("abc")
    assert hash_bytes("sm3", b"abc") == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


def test_rows_have_exactly_the_table_columns_and_link_up() -> None:
    rows = _log(3).rows
    assert [set(r) for r in rows] == [set(AUDIT_EVENTS.column_names)] * 3
    assert rows[0]["prev_hash"] == GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert first_broken(rows) is None


def test_canonical_json_is_stable_for_naive_local_and_aware_utc() -> None:
    row = _log(1).rows[0]
    # as PySpark's collect() returns it: the same instant, naive, in the process's zone
    naive = {**row, "ts": row["ts"].astimezone().replace(tzinfo=None)}
    assert canonical(row) == canonical(naive)
    assert b'"ts":' in canonical(row)
    assert b"hash" not in canonical(row).replace(b"hash_alg", b"")


@pytest.mark.parametrize("algorithm", ["sm3", "sha256"])
def test_both_algorithms_chain(algorithm: str) -> None:
    rows = _log(4, algorithm).rows
    assert first_broken(rows) is None
    assert all(r["hash_alg"] == algorithm and len(r["hash"]) == 64 for r in rows)


FIELDS = ["actor", "action", "target", "row_count", "purpose", "break_glass", "ts", "seq"]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 8).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.sampled_from(FIELDS))
    )
)
def test_any_single_row_change_is_detected(case: tuple[int, int, str]) -> None:
    n, i, name = case
    rows = _log(n).rows
    old = rows[i][name]
    if name == "ts":
        rows[i][name] = datetime(2000, 1, 1, tzinfo=UTC)
    elif name == "seq":
        rows[i][name] = old + n  # moved elsewhere in the order
    elif isinstance(old, bool):
        rows[i][name] = not old
    elif isinstance(old, int):
        rows[i][name] = old + 1
    else:
        rows[i][name] = f"{old}x"
    broken = first_broken(rows)
    assert broken is not None
    assert broken[0] == i + 1


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 8).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 2))))
def test_deletion_and_swapping_are_detected(case: tuple[int, int]) -> None:
    n, i = case
    rows = _log(n).rows
    assert first_broken(rows[:i] + rows[i + 1 :]) is not None
    swapped = [dict(r) for r in rows]
    swapped[i]["seq"], swapped[i + 1]["seq"] = swapped[i + 1]["seq"], swapped[i]["seq"]
    assert first_broken(swapped) == (i + 1, "prev_hash does not match the previous row")


def test_audited_returns_rows_only_after_recording() -> None:
    log = MemoryAuditLog()
    event = AuditEvent(Action.READ, "dr", purpose="treatment")
    assert audited(log, [event], lambda: [1, 2]) == [1, 2]
    assert log.rows[-1]["row_count"] == 2
    log.fail = True
    with pytest.raises(LakehouseError) as exc:
        audited(log, [event], lambda: [1, 2, 3])
    assert exc.value.code is ErrorCode.AUDIT_WRITE_FAILED


def test_a_read_that_fails_in_any_way_is_recorded_as_failed() -> None:
    log = MemoryAuditLog()
    event = AuditEvent(Action.READ, "dr", purpose="treatment")

    def broken() -> list[int]:
        raise RuntimeError("engine failure")

    with pytest.raises(RuntimeError):
        audited(log, [event], broken)
    assert (log.rows[-1]["outcome"], log.rows[-1]["reason"]) == ("failed", "RuntimeError")


def test_patient_refs_are_keyed_and_stable() -> None:
    a, b = patient_ref(b"k1" * 16, "P1"), patient_ref(b"k2" * 16, "P1")
    assert a == patient_ref(b"k1" * 16, "P1")
    assert a != b
    assert a != hashlib.sha256(b"P1").hexdigest()
    assert "P1" not in a


def test_generated_keys_are_0600_and_stable(tmp_path: Path) -> None:
    cfg = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    key = session_key(cfg)
    assert key == session_key(cfg)
    assert len(key) == 32
    path = tmp_path / "secrets" / "session.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pseudonym_key(cfg) != key
    os.chmod(path, 0o644)
    with pytest.raises(LakehouseError) as exc:
        secret_key(path.parent, "session")
    assert exc.value.code is ErrorCode.STORAGE_UNAVAILABLE
    cfg2 = Settings(data_dir=tmp_path, security={"session_secret": "s" * 32})  # type: ignore[call-arg]
    assert session_key(cfg2) == b"s" * 32
    assert "s" * 32 not in cfg2.model_dump_json()


def test_a_collected_naive_timestamp_is_read_as_the_process_local_time() -> None:
    # PySpark hands back a TIMESTAMP as datetime.fromtimestamp(...): local, naive. The chain
    # must hash the same instant that was written, whatever the process's zone.
    from lakehouse.governance.audit import to_micros

    instant = 1_767_237_060_123_456  # 2026-01-01T03:11:00.123456Z
    aware = datetime.fromtimestamp(instant / 1e6, UTC).replace(microsecond=123_456)
    naive = datetime.fromtimestamp(instant // 1_000_000).replace(microsecond=123_456)
    assert to_micros(aware) == to_micros(naive) == instant
