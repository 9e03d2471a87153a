"""Where a standby lives, which tables it ships, and the files that mark its state.

A standby site is a folder (``standby.target``, default ``<data_dir>-standby``):

- ``warehouse/<relative path>``: each shipped table, at the same path relative to the
  warehouse as on the primary (``silver.db/patient``), so a lakehouse started with
  ``LAKEHOUSE_DATA_DIR=<target>`` finds its tables where managed tables would lie;
- ``standby/``: the shipper's lock, staging folder, ``status.json`` and ``metrics.prom``,
  the failover request and the promotion marker.

Tables are found without Spark, from the warehouse layout Spark gives managed tables:
``<warehouse>/<schema>.db/<table>/_delta_log`` (and ``<warehouse>/<table>`` for
``default``), so the shipper runs as its own small process without a catalog connection.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings

LOG_DIR = "_delta_log"
META_DIR = "standby"
STATUS = "status.json"
METRICS = "metrics.prom"
LOCK = "shipper.lock"
PROMOTE_REQUEST = "PROMOTE-REQUESTED"
PROMOTED = "PROMOTED"
STAGING = "staging"


@dataclass(frozen=True)
class Site:
    """The primary's warehouse and the standby's folders."""

    source: Path  # the primary's warehouse
    root: Path  # standby.target

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def meta(self) -> Path:
        return self.root / META_DIR

    @property
    def staging(self) -> Path:
        return self.meta / STAGING


def _local(location: str, setting: str) -> Path:
    parts = urlsplit(location)
    if parts.scheme not in ("", "file"):
        raise error(
            ErrorCode.STANDBY_TARGET_INVALID,
            path=setting,
            reason=f"storage scheme {parts.scheme} (only local and mounted paths)",
        )
    return Path(unquote(parts.path)).resolve()


def target_root(cfg: Settings) -> Path:
    """``standby.target`` (default ``<data_dir>-standby``, beside the data folder)."""
    target = cfg.standby.target
    if target is None:
        return cfg.data_dir.with_name(cfg.data_dir.name + "-standby")
    return target if target.is_absolute() else cfg.data_dir / target


def site(cfg: Settings) -> Site:
    """The site of ``cfg``; ``LH-STB-001`` when the target overlaps the warehouse."""
    source = _local(cfg.warehouse, "warehouse")
    root = _local(str(target_root(cfg)), "standby.target")
    if root == source or root.is_relative_to(source) or source.is_relative_to(root):
        raise error(
            ErrorCode.STANDBY_TARGET_INVALID,
            path=str(root),
            reason="it overlaps the primary's warehouse",
        )
    return Site(source=source, root=root)


def wanted(name: str, include: list[str], exclude: list[str]) -> bool:
    """Whether ``schema.table`` matches an include pattern and no exclude pattern."""
    return any(fnmatchcase(name, p) for p in include) and not any(
        fnmatchcase(name, p) for p in exclude
    )


def discover(warehouse: Path) -> dict[str, str] | None:
    """``schema.table`` -> path relative to ``warehouse`` of every Delta table laid out as
    Spark lays out managed tables; None when the warehouse cannot be listed (unreachable,
    which is not the same as empty)."""
    found: dict[str, str] = {}
    try:
        entries = sorted(os.scandir(warehouse), key=lambda e: e.name)
    except OSError:
        return None
    for entry in entries:
        if entry.name.startswith((".", "_")) or not entry.is_dir():
            continue
        if os.path.isdir(os.path.join(entry.path, LOG_DIR)):
            found[f"default.{entry.name}"] = entry.name
        elif entry.name.endswith(".db"):
            schema = entry.name[: -len(".db")]
            try:
                children = sorted(os.scandir(entry.path), key=lambda e: e.name)
            except OSError:
                continue
            for child in children:
                if child.is_dir() and os.path.isdir(os.path.join(child.path, LOG_DIR)):
                    found[f"{schema}.{child.name}"] = f"{entry.name}/{child.name}"
    return found


def fsync_dir(path: Path) -> None:
    """Make the renames into ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by a temporary name, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ShipperLock:
    """The one-shipper-per-standby lock (``flock`` on ``standby/shipper.lock``)."""

    def __init__(self, meta: Path) -> None:
        self.path = meta / LOCK
        self._fh: TextIO | None = None

    def acquire(self, wait_s: float = 0.0) -> bool:
        """Take the lock, waiting up to ``wait_s``; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    return False
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
