"""What one version of a Delta table consists of, read from its ``_delta_log`` (no Spark).

A backup copies exactly the files a pinned version references: the data files of its add
actions, the deletion-vector files those adds point to, the newest complete checkpoint at or
before the version and the JSON commits after it up to the version. The log replay follows
the Delta protocol: the state is the adds of the checkpoint (classic, multi-part, or V2 with
its sidecars) and of the commits after it, each action keyed by (path, deletion-vector id),
the last action for a key winning. Only metadata is read; the file list is bounded by the
table's file count, never by its rows.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow.parquet as pq

from lakehouse.errors import ErrorCode, error

LOG_DIR = "_delta_log"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CRC = re.compile(r"^(\d{20})\.crc$")
_CLASSIC = re.compile(r"^(\d{20})\.checkpoint\.parquet$")
_MULTI = re.compile(r"^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$")
_V2 = re.compile(r"^(\d{20})\.checkpoint\.[0-9a-fA-F-]{36}\.(json|parquet)$")
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUE = {c: i for i, c in enumerate(_Z85)}


@dataclass(frozen=True)
class Snapshot:
    """The files of one version: paths relative to the table folder (POSIX form)."""

    version: int
    table_id: str
    data_files: tuple[str, ...]
    dv_files: tuple[str, ...]
    log_files: tuple[str, ...]

    @property
    def all_files(self) -> tuple[str, ...]:
        return (*self.log_files, *self.data_files, *self.dv_files)


def z85_decode(text: str) -> bytes:
    """Decode Z85 (ZeroMQ base-85), the encoding of Delta's deletion-vector ids."""
    if len(text) % 5:
        raise ValueError("Z85 text length must be a multiple of 5")
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for ch in text[i : i + 5]:
            value = value * 85 + _Z85_VALUE[ch]
        out += value.to_bytes(4, "big")
    return bytes(out)


def dv_relative_path(dv: dict[str, Any]) -> str | None:
    """The file of a deletion vector, relative to the table; None for an inline one."""
    storage = dv.get("storageType")
    if storage == "i":
        return None
    if storage != "u":  # "p": an absolute path (shallow clones): not a file of this table
        raise ValueError(f"deletion vector storage type {storage!r} is not supported")
    encoded = str(dv["pathOrInlineDv"])
    prefix, uid = encoded[:-20], encoded[-20:]
    name = f"deletion_vector_{uuid.UUID(bytes=z85_decode(uid))}.bin"
    return f"{prefix}/{name}" if prefix else name


def _version(name: str) -> int | None:
    for pattern in (_COMMIT, _CRC, _CLASSIC, _MULTI, _V2):
        m = pattern.match(name)
        if m:
            return int(m.group(1))
    return None


def latest_log_version(table_dir: Path) -> int | None:
    """The newest commit version in the log folder (None: no log)."""
    log = table_dir / LOG_DIR
    if not log.is_dir():
        return None
    versions = [int(m.group(1)) for p in log.iterdir() if (m := _COMMIT.match(p.name))]
    return max(versions) if versions else None


def _checkpoints(log: Path, version: int) -> dict[int, list[list[str]]]:
    """Checkpoint candidates at or before ``version``: version -> complete file groups."""
    found: dict[int, list[list[str]]] = {}
    parts: dict[tuple[int, int], set[int]] = {}
    for p in log.iterdir():
        if (m := _CLASSIC.match(p.name)) or (m := _V2.match(p.name)):
            v = int(m.group(1))
            if v <= version:
                found.setdefault(v, []).append([p.name])
        elif m := _MULTI.match(p.name):
            v = int(m.group(1))
            if v <= version:
                parts.setdefault((v, int(m.group(3))), set()).add(int(m.group(2)))
    for (v, total), have in parts.items():
        if have == set(range(1, total + 1)):
            names = [f"{v:020d}.checkpoint.{i:010d}.{total:010d}.parquet" for i in have]
            found.setdefault(v, []).append(sorted(names))
    return found


def _parquet_actions(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, action) of the add, remove, metaData and sidecar columns of a parquet file."""
    pf = pq.ParquetFile(path)
    wanted = [c for c in ("add", "remove", "metaData", "sidecar") if c in pf.schema_arrow.names]
    for batch in pf.iter_batches(columns=wanted, batch_size=4096):
        for name in wanted:
            for value in batch.column(name).to_pylist():
                if value is not None:
                    yield name, value


def _json_actions(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                action: dict[str, Any] = json.loads(line)
                yield from action.items()


def _key(action: dict[str, Any]) -> tuple[str, str]:
    dv = action.get("deletionVector") or {}
    dv_id = f"{dv.get('storageType', '')}{dv.get('pathOrInlineDv', '')}@{dv.get('offset', '')}"
    return str(action["path"]), dv_id if dv else ""


def snapshot(table_dir: Path, version: int, *, table: str) -> Snapshot:
    """The files of ``version`` of the Delta table in ``table_dir`` (``LH-BAK-003`` when the
    log cannot rebuild it: a missing commit, an unsupported action)."""
    log = table_dir / LOG_DIR

    def broken(reason: str) -> Exception:
        return error(ErrorCode.BACKUP_LOG_UNREADABLE, table=table, version=version, reason=reason)

    if not log.is_dir():
        raise broken("no _delta_log folder")
    state: dict[tuple[str, str], dict[str, Any] | None] = {}
    table_id = ""
    log_files: list[str] = []
    candidates = _checkpoints(log, version)
    start = 0
    if candidates:
        cp = max(candidates)
        names = candidates[cp][0]
        start = cp + 1
        sidecars: list[str] = []
        for name in names:
            reader = _json_actions if name.endswith(".json") else _parquet_actions
            for kind, action in reader(log / name):
                if kind == "add":
                    state[_key(action)] = action
                elif kind == "metaData":
                    table_id = str(action.get("id", table_id))
                elif kind == "sidecar":
                    sidecars.append(str(action["path"]))
            log_files.append(f"{LOG_DIR}/{name}")
        for side in sidecars:
            rel = side if "/" in side else f"_sidecars/{side}"
            for kind, action in _parquet_actions(log / rel):
                if kind == "add":
                    state[_key(action)] = action
            log_files.append(f"{LOG_DIR}/{rel}")
        # The checkpoint's own commit too: Delta dates a version by its commit file and
        # refuses a newest version that has only a checkpoint.
        if (log / f"{cp:020d}.json").exists():
            log_files.append(f"{LOG_DIR}/{cp:020d}.json")
        elif cp == version:
            raise broken(f"commit {cp} is missing beside its checkpoint")
        if (log / f"{cp:020d}.crc").exists():
            log_files.append(f"{LOG_DIR}/{cp:020d}.crc")
    for v in range(start, version + 1):
        commit = log / f"{v:020d}.json"
        if not commit.exists():
            raise broken(f"commit {v} is missing (cleaned up without a checkpoint after it)")
        for kind, action in _json_actions(commit):
            if kind == "add":
                state[_key(action)] = action
            elif kind == "remove":
                state[_key(action)] = None
            elif kind == "metaData":
                table_id = str(action.get("id", table_id))
        log_files.append(f"{LOG_DIR}/{commit.name}")
        if (log / f"{v:020d}.crc").exists():
            log_files.append(f"{LOG_DIR}/{v:020d}.crc")
    data: list[str] = []
    dvs: set[str] = set()
    for add in state.values():
        if add is None:
            continue
        path = unquote(str(add["path"]))
        if "://" in path or path.startswith("/"):
            raise broken("a data file lies outside the table folder (a shallow clone)")
        data.append(path)
        dv = add.get("deletionVector")
        if dv:
            try:
                dv_file = dv_relative_path(dv)
            except ValueError as exc:
                raise broken(str(exc)) from None
            if dv_file is not None:
                dvs.add(dv_file)
    return Snapshot(
        version=version,
        table_id=table_id,
        data_files=tuple(sorted(set(data))),
        dv_files=tuple(sorted(dvs)),
        log_files=tuple(log_files),
    )


_UNITS = {
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 7 * 86400.0,
}


def interval_seconds(text: str) -> float:
    """Seconds of a Delta interval property ('interval 7 days', '168 hours', '1 week')."""
    words = text.lower().replace(",", " ").split()
    if words and words[0] == "interval":
        words = words[1:]
    if not words or len(words) % 2:
        raise ValueError("not an interval")
    total = 0.0
    for number, unit in zip(words[::2], words[1::2], strict=True):
        unit = unit.rstrip("s")
        if unit not in _UNITS:
            raise ValueError(f"unknown interval unit {unit}")
        total += float(number) * _UNITS[unit]
    return total
