"""The Delta log reader, Z85 ids, intervals and backup retention without a JVM."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lakehouse.backup.delta_log import (
    dv_relative_path,
    interval_seconds,
    snapshot,
    z85_decode,
)
from lakehouse.backup.manifest import Manifest, write_manifest
from lakehouse.backup.take import prune
from lakehouse.errors import ErrorCode, LakehouseError

_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85_encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data), 4):
        value = int.from_bytes(data[i : i + 4], "big")
        chunk = []
        for _ in range(5):
            value, rem = divmod(value, 85)
            chunk.append(_Z85[rem])
        out.append("".join(reversed(chunk)))
    return "".join(out)


def test_z85_reference_vector() -> None:
    # The ZeroMQ RFC 32 test vector.
    assert z85_decode("HelloWorld") == bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])


def test_deletion_vector_file_names() -> None:
    uid = uuid.uuid4()
    encoded = z85_encode(uid.bytes)
    assert dv_relative_path({"storageType": "u", "pathOrInlineDv": encoded}) == (
        f"deletion_vector_{uid}.bin"
    )
    assert dv_relative_path({"storageType": "u", "pathOrInlineDv": "ab" + encoded}) == (
        f"ab/deletion_vector_{uid}.bin"
    )
    assert dv_relative_path({"storageType": "i", "pathOrInlineDv": "xyz"}) is None
    with pytest.raises(ValueError, match="not supported"):
        dv_relative_path({"storageType": "p", "pathOrInlineDv": "/abs"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("interval 7 days", 7 * 86400),
        ("interval 1 week", 7 * 86400),
        ("168 hours", 168 * 3600),
        ("interval 1 day 12 hours", 36 * 3600),
    ],
)
def test_intervals(text: str, seconds: float) -> None:
    assert interval_seconds(text) == seconds


def _commit(log: Path, version: int, *actions: dict[str, object]) -> None:
    log.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(json.dumps(a) for a in actions)
    (log / f"{version:020d}.json").write_text(lines + "\n")


def test_log_replay_keeps_live_files_and_their_deletion_vectors(tmp_path: Path) -> None:
    log = tmp_path / "_delta_log"
    uid = uuid.uuid4()
    dv = {"storageType": "u", "pathOrInlineDv": z85_encode(uid.bytes), "offset": 1}
    _commit(log, 0, {"metaData": {"id": "t1"}}, {"add": {"path": "a.parquet", "size": 1}})
    _commit(log, 1, {"add": {"path": "p%3Dx%20y/b.parquet", "size": 1}})
    _commit(
        log,
        2,
        {"remove": {"path": "a.parquet"}},
        {"add": {"path": "a.parquet", "size": 1, "deletionVector": dv}},
    )
    _commit(log, 3, {"remove": {"path": "p%3Dx%20y/b.parquet"}})
    two = snapshot(tmp_path, 2, table="t")
    assert two.table_id == "t1"
    assert two.data_files == ("a.parquet", "p=x y/b.parquet")
    assert two.dv_files == (f"deletion_vector_{uid}.bin",)
    assert len(two.log_files) == 3
    three = snapshot(tmp_path, 3, table="t")
    assert three.data_files == ("a.parquet",)
    (log / f"{1:020d}.json").unlink()
    with pytest.raises(LakehouseError) as caught:
        snapshot(tmp_path, 3, table="t")
    assert caught.value.code is ErrorCode.BACKUP_LOG_UNREADABLE


def test_prune_keeps_the_newest_fulls_and_their_incrementals(tmp_path: Path) -> None:
    def backup(backup_id: str, kind: str, parent: str | None) -> None:
        folder = tmp_path / backup_id
        folder.mkdir()
        m = Manifest(backup_id, kind, parent, f"2026-11-2{backup_id[1]}T00:00:00+00:00",  # type: ignore[arg-type]
                     "0", "/w", "/d")  # fmt: skip
        write_manifest(folder, m)

    backup("b1-full", "full", None)
    backup("b2-incr", "incremental", "b1-full")
    backup("b3-full", "full", None)
    backup("b4-incr", "incremental", "b3-full")
    assert prune(tmp_path, 1) == ("b1-full", "b2-incr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b3-full", "b4-incr"]
