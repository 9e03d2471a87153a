"""``lakehouse standby``: ship every committed Delta version to the standby, files first.

For each table and each next version ``N`` the primary has committed (``N.json`` exists:
Delta on a local file system writes a commit under a temporary name and renames it, so a
commit file that exists is whole): read the commit, copy every data, deletion-vector and
change-data file it adds to the standby table (a staging name, fsync, SHA-256 checked
against the bytes read from the primary, size against the log, rename, fsync of the
folders), and only then write ``N.json`` itself, with the primary's bytes and mtime (Delta
dates a version by its commit file). Delta readers see a version only through its commit
file, so the standby never exposes a version whose files are missing. A commit that does
not parse, or a file it names that is missing, stops that table at ``N`` (retried each
cycle, ``LH-STB-003``/``LH-STB-002`` in the status); data files of a commit the writer never
finished are never named by a commit and never shipped.

Checkpoints, their sidecars and ``.crc`` files are written after their commit on the
primary; the shipper lists a table's log every cycle while the table is busy and every
``standby.sweep_interval_s`` when idle, copies those of shipped versions, and copies
``_last_checkpoint`` only once the checkpoint it names is complete on the standby.

There is no state besides the standby's own log: a restarted shipper continues after the
newest commit file on the standby (a file copied before the crash is kept when its size
matches; data files are immutable and uniquely named). A table that starts shipping after
the primary cleaned up its first commits is seeded from the newest checkpoint. The lag of a
version is the time from the primary's commit file appearing (its mtime) to the standby's
commit landing; the status and the Prometheus text (``standby/metrics.prom``) carry it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lakehouse.backup.delta_log import dv_relative_path, snapshot
from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.settings import Settings
from lakehouse.standby import metrics
from lakehouse.standby.site import (
    LOG_DIR,
    METRICS,
    PROMOTE_REQUEST,
    PROMOTED,
    STATUS,
    ShipperLock,
    Site,
    discover,
    fsync_dir,
    read_json,
    site,
    wanted,
    write_atomic,
)

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
#: A table that shipped a version lists its log every cycle for this long (late checkpoints).
BUSY_S = 10.0
LAG_SAMPLES = 10_000
_COMMIT = re.compile(r"^(\d{20})\.json$")
_SIDE = re.compile(r"^(\d{20})\.(crc|checkpoint\.parquet|checkpoint\..+\.(?:json|parquet))$")
_MULTI = re.compile(r"^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$")


def commit_name(version: int) -> str:
    return f"{version:020d}.json"


def parse_commit(data: bytes) -> list[dict[str, Any]]:
    """The actions of a commit file; ValueError when it is not whole JSON lines."""
    actions: list[dict[str, Any]] = []
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            action = json.loads(line)
            if not isinstance(action, dict):
                raise ValueError("a line is not a JSON object")
            actions.append(action)
    if not actions:
        raise ValueError("empty")
    return actions


def referenced_files(actions: list[dict[str, Any]]) -> dict[str, int | None]:
    """Files a commit adds (data, deletion vectors, change data): path -> size in the log
    (None where the log has no size for the file, as for a deletion-vector file)."""
    files: dict[str, int | None] = {}
    for action in actions:
        for kind in ("add", "cdc"):
            item = action.get(kind)
            if not isinstance(item, dict):
                continue
            path = unquote(str(item["path"]))
            if "://" in path or path.startswith("/"):
                raise ValueError("a data file lies outside the table folder (a shallow clone)")
            size = item.get("size")
            files[path] = int(size) if size is not None else None
            dv = item.get("deletionVector")
            if dv:
                dv_file = dv_relative_path(dv)
                if dv_file is not None:
                    files.setdefault(dv_file, None)
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class TableState:
    """What the shipper knows of one table (rebuilt from the standby's log at start)."""

    name: str
    rel: str
    standby_version: int | None = None
    primary_version: int | None = None
    shipped: int = 0
    last_ship_lag_s: float | None = None
    last_shipped_at: float | None = None
    lag_s: float = 0.0
    error: dict[str, str] | None = None
    dropped_on_primary: bool = False
    busy_until: float = 0.0
    next_sweep: float = 0.0
    first_commit: tuple[int, int, int] | None = None  # primary 0.json (inode, mtime, size)
    files_copied: int = 0
    bytes_copied: int = 0


@dataclass
class CycleReport:
    versions: int = 0
    files: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


class Shipper:
    """Ships every wanted table of the primary's warehouse to ``standby.target``.

    ``with Shipper(cfg) as s: s.run(stop=event)`` (or ``s.cycle()`` for one pass); one
    shipper per standby location (``LH-STB-005``), none once promoted (``LH-STB-006``).
    """

    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.site: Site = site(cfg)
        self.tables: dict[str, TableState] = {}
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self.histogram = metrics.LagHistogram()
        self.cycles = 0
        self.started_at = time.time()
        self.state = "starting"
        self._lock = ShipperLock(self.site.meta)
        self._logged: set[tuple[str, int, str]] = set()

    # --- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> Shipper:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        meta = self.site.meta
        self._check_not_promoted()
        if not self._lock.acquire():
            raise error(ErrorCode.STANDBY_LOCKED, path=str(meta))
        self._check_not_promoted()  # a failover may have finished while we waited
        shutil.rmtree(self.site.staging, ignore_errors=True)  # leftovers of a crash
        self.site.staging.mkdir(parents=True, exist_ok=True)
        self.site.warehouse.mkdir(parents=True, exist_ok=True)
        self.state = "running"
        logger.info("standby: shipping %s to %s", self.site.source, self.site.root)

    def close(self) -> None:
        if self.state == "running":
            self.state = "stopped"
        try:
            self.write_status()
        finally:
            self._lock.release()

    def _check_not_promoted(self) -> None:
        meta = self.site.meta
        marker = read_json(meta / PROMOTED)
        if marker is not None:
            raise error(
                ErrorCode.STANDBY_PROMOTED, path=str(self.site.root), found=marker["promoted_at"]
            )
        if (meta / PROMOTE_REQUEST).exists():
            raise error(
                ErrorCode.STANDBY_PROMOTED,
                path=str(self.site.root),
                found=f"(a failover is in progress: {PROMOTE_REQUEST})",
            )

    def promote_requested(self) -> bool:
        return (self.site.meta / PROMOTE_REQUEST).exists()

    def run(self, *, stop: threading.Event | None = None, cycles: int | None = None) -> None:
        """Ship until ``stop`` is set, ``cycles`` passes ran, or a failover asks to stop."""
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set():
            t0 = time.monotonic()
            self.cycle()
            done += 1
            if cycles is not None and done >= cycles:
                break
            if self.promote_requested():
                self.state = "stopped for failover"
                logger.warning("standby: a failover was requested; shipping stops")
                break
            stop.wait(max(0.0, self.cfg.standby.poll_interval_s - (time.monotonic() - t0)))

    # --- one pass ----------------------------------------------------------------------
    def cycle(self) -> CycleReport:
        """One pass over every wanted table; writes the status and metrics files."""
        report = CycleReport()
        scfg = self.cfg.standby
        found = discover(self.site.source)
        if found is not None:
            found = {n: r for n, r in found.items() if wanted(n, scfg.include, scfg.exclude)}
            for name, rel in found.items():
                state = self.tables.get(name)
                if state is None or state.rel != rel:
                    self.tables[name] = self._start_table(name, rel)
            # Dropped on the primary only while the warehouse itself answers; the standby
            # copy is kept (failover leaves it unregistered).
            for name, state in self.tables.items():
                state.dropped_on_primary = name not in found
        now = time.time()
        for state in self.tables.values():
            if state.dropped_on_primary:
                continue
            try:
                self._ship_table(state, report)
                if state.error is not None:
                    logger.info("standby: %s ships again", state.name)
                state.error = None
            except LakehouseError as exc:
                state.error = {"code": exc.code.value.id, "message": str(exc)}
                nxt = 0 if state.standby_version is None else state.standby_version + 1
                key = (state.name, nxt, exc.code.value.id)
                if key not in self._logged:  # once per table, version and code
                    self._logged.add(key)
                    logger.warning("standby: %s", exc)
                report.errors.append(state.name)
            except OSError as exc:
                state.error = {"code": "OSError", "message": f"{type(exc).__name__}: {exc}"}
                logger.warning("standby: %s: %s", state.name, state.error["message"])
                report.errors.append(state.name)
            state.lag_s = self._current_lag(state, now)
        self.cycles += 1
        self.write_status()
        return report

    def _paths(self, state: TableState) -> tuple[Path, Path]:
        return self.site.source / state.rel, self.site.warehouse / state.rel

    def _start_table(self, name: str, rel: str) -> TableState:
        state = TableState(name=name, rel=rel)
        _, dst = self._paths(state)
        state.standby_version = _newest_commit(dst / LOG_DIR)
        logger.info("standby: table %s at standby version %s", name, state.standby_version)
        return state

    def _current_lag(self, state: TableState, now: float) -> float:
        """Seconds since the oldest commit the standby lacks appeared; 0 when caught up."""
        src, _ = self._paths(state)
        nxt = 0 if state.standby_version is None else state.standby_version + 1
        try:
            return max(0.0, now - (src / LOG_DIR / commit_name(nxt)).stat().st_mtime)
        except OSError:
            return 0.0

    # --- one table ---------------------------------------------------------------------
    def _ship_table(self, state: TableState, report: CycleReport) -> None:
        src, dst = self._paths(state)
        self._check_replaced(state, src, dst)
        if state.standby_version is None and not (src / LOG_DIR / commit_name(0)).exists():
            self._seed(state, src, dst, report)
        while True:
            nxt = 0 if state.standby_version is None else state.standby_version + 1
            if not self._ship_version(state, nxt, src, dst, report):
                break
        now = time.monotonic()
        if now < state.busy_until or now >= state.next_sweep:
            self._sweep(state, src, dst, report)
            state.next_sweep = now + self.cfg.standby.sweep_interval_s

    def _check_replaced(self, state: TableState, src: Path, dst: Path) -> None:
        """A table dropped and created again at the same path starts a new history: the
        standby's old copy is moved aside to ``standby/replaced/``."""
        first = src / LOG_DIR / commit_name(0)
        try:
            st = first.stat()
        except OSError:
            return
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == state.first_commit:
            return
        ours = dst / LOG_DIR / commit_name(0)
        if ours.exists() and ours.read_bytes() != first.read_bytes():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.site.meta / "replaced" / f"{state.name}-{stamp}"
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dst, aside)
            logger.warning(
                "standby: %s was replaced on the primary; old copy in %s", state.name, aside
            )
            state.standby_version = None
            state.primary_version = None
        state.first_commit = key

    def _copy(self, state: TableState, version: int, src: Path, dst: Path, size: int | None) -> int:
        """Copy one file by staging name; bytes copied (0 when already there: data and
        deletion-vector files are immutable and uniquely named, and a file is renamed into
        place only whole)."""

        def bad(reason: str) -> LakehouseError:
            rel = src.relative_to(self.site.source / state.rel).as_posix()
            return error(
                ErrorCode.STANDBY_FILE_MISSING,
                version=version,
                table=state.name,
                file=rel,
                reason=reason,
            )

        if dst.is_file():
            try:
                expected = size if size is not None else src.stat().st_size
            except FileNotFoundError:
                expected = dst.stat().st_size  # already copied; vacuumed on the primary since
            if dst.stat().st_size == expected:
                return 0
        tmp = self.site.staging / uuid.uuid4().hex
        digest = hashlib.sha256()
        written = 0
        try:
            try:
                fin = src.open("rb")
            except FileNotFoundError:
                raise bad("absent on the primary") from None
            with fin, tmp.open("wb") as fout:
                while chunk := fin.read(CHUNK):
                    digest.update(chunk)
                    fout.write(chunk)
                    written += len(chunk)
                fout.flush()
                os.fsync(fout.fileno())
            if size is not None and written != size:
                raise bad(f"{written} bytes on the primary, the log says {size}")
            if self.cfg.standby.verify_hash and _sha256(tmp) != digest.hexdigest():
                raise bad("the standby copy's SHA-256 differs from the primary's bytes")
            shutil.copystat(src, tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        state.files_copied += 1
        state.bytes_copied += written
        return written

    def _ship_version(
        self, state: TableState, version: int, src: Path, dst: Path, report: CycleReport
    ) -> bool:
        """Ship ``version`` if the primary committed it; False when it has not (yet)."""
        commit = src / LOG_DIR / commit_name(version)
        try:
            st = commit.stat()
            data = commit.read_bytes()
        except FileNotFoundError:
            return False
        try:
            actions = parse_commit(data)
            files = referenced_files(actions)
        except (ValueError, KeyError) as exc:
            raise error(
                ErrorCode.STANDBY_COMMIT_UNREADABLE,
                table=state.name,
                version=version,
                reason=str(exc)[:200],
            ) from None
        dirs: set[Path] = set()
        for rel, size in sorted(files.items()):
            n = self._copy(state, version, src / rel, dst / rel, size)
            if n:
                report.files += 1
                report.bytes += n
                dirs.add((dst / rel).parent)
        for d in dirs:  # the files' renames are durable before the commit is
            fsync_dir(d)
        self._place_log_file(dst / LOG_DIR / commit_name(version), data, st)
        landed = time.time()
        lag = max(0.0, landed - st.st_mtime)
        self.lags.append(lag)
        self.histogram.observe(lag)
        state.standby_version = version
        state.primary_version = max(version, state.primary_version or version)
        state.shipped += 1
        state.last_ship_lag_s = lag
        state.last_shipped_at = landed
        state.busy_until = time.monotonic() + BUSY_S
        report.versions += 1
        logger.debug("standby: %s version %d shipped, lag %.3fs", state.name, version, lag)
        return True

    def _place_log_file(self, dst: Path, data: bytes, st: os.stat_result) -> None:
        """Write a log file from the primary's bytes, with its mtime, by rename; fsync'd."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.site.staging / uuid.uuid4().hex
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(dst.parent)

    def _copy_log_file(self, src: Path, dst: Path) -> bool:
        try:
            st = src.stat()
            data = src.read_bytes()
        except FileNotFoundError:
            return False  # cleaned up on the primary meanwhile
        if not _whole(src.name, data):
            return False  # still being written where the store does not rename: next sweep
        self._place_log_file(dst, data, st)
        return True

    def _seed(self, state: TableState, src: Path, dst: Path, report: CycleReport) -> None:
        """Seed an empty standby table from the primary's newest checkpoint when the
        primary no longer has its first commit (log cleaned up)."""
        newest = _newest_commit(src / LOG_DIR)
        if newest is None:
            return
        snap = snapshot(src, newest, table=state.name)  # LH-BAK-003 when it cannot
        base = min(
            (int(Path(f).name[:20]) for f in snap.log_files if ".checkpoint." in f),
            default=None,
        )
        if base is None:
            raise error(
                ErrorCode.STANDBY_LOG_GAP, table=state.name, version=0
            )  # neither commit 0 nor a checkpoint
        seed = snapshot(src, base, table=state.name)
        for rel in (*seed.data_files, *seed.dv_files):
            report.bytes += self._copy(state, base, src / rel, dst / rel, None)
        commit = f"{LOG_DIR}/{commit_name(base)}"
        for rel in seed.log_files:
            if rel != commit:
                self._copy_log_file(src / rel, dst / rel)
        if not self._copy_log_file(src / commit, dst / commit):
            raise error(ErrorCode.STANDBY_LOG_GAP, table=state.name, version=base)
        state.standby_version = base
        logger.info("standby: %s seeded from the checkpoint of version %d", state.name, base)

    def _sweep(self, state: TableState, src: Path, dst: Path, report: CycleReport) -> None:
        """Copy checkpoints, sidecars and .crc files of shipped versions; _last_checkpoint
        once its checkpoint is complete here; detect a gap in the primary's log."""
        if state.standby_version is None:
            return
        src_log, dst_log = src / LOG_DIR, dst / LOG_DIR
        try:
            names = set(os.listdir(src_log))
        except FileNotFoundError:
            return
        have = set(os.listdir(dst_log))
        newest = max((int(m.group(1)) for n in names if (m := _COMMIT.match(n))), default=None)
        if newest is not None:
            state.primary_version = max(newest, state.standby_version)
            nxt = state.standby_version + 1
            gap = newest > nxt and commit_name(nxt) not in names
            if gap and not (src_log / commit_name(nxt)).exists():
                raise error(ErrorCode.STANDBY_LOG_GAP, table=state.name, version=nxt)
        # Sidecars (V2 checkpoints) before the checkpoints that name them.
        side_src = src_log / "_sidecars"
        if side_src.is_dir():
            side_have = (
                set(os.listdir(dst_log / "_sidecars"))
                if (dst_log / "_sidecars").is_dir()
                else set()
            )
            for n in sorted(set(os.listdir(side_src)) - side_have):
                if not n.startswith("."):
                    self._copy_log_file(side_src / n, dst_log / "_sidecars" / n)
        groups: set[tuple[int, int]] = set()
        for n in sorted(names - have):
            m = _SIDE.match(n)
            if m is None or int(m.group(1)) > state.standby_version:
                continue
            multi = _MULTI.match(n)
            if multi is not None:  # a multi-part checkpoint: only a complete group
                groups.add((int(multi.group(1)), int(multi.group(3))))
                continue
            if self._copy_log_file(src_log / n, dst_log / n):
                report.files += 1
        for v, total in sorted(groups):
            part_names = [
                f"{v:020d}.checkpoint.{i:010d}.{total:010d}.parquet" for i in range(1, total + 1)
            ]
            if all(p in names for p in part_names):
                for p in part_names:
                    self._copy_log_file(src_log / p, dst_log / p)
        self._ship_last_checkpoint(state, src_log, dst_log)

    def _ship_last_checkpoint(self, state: TableState, src_log: Path, dst_log: Path) -> None:
        src = src_log / "_last_checkpoint"
        try:
            st = src.stat()
            data = src.read_bytes()
            pointer = json.loads(data)
            version = int(pointer["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        assert state.standby_version is not None
        if version > state.standby_version:
            return
        current = dst_log / "_last_checkpoint"
        if current.is_file() and current.read_bytes() == data:
            return
        names = set(os.listdir(dst_log))
        prefix = f"{version:020d}.checkpoint."
        parts = int(pointer.get("parts") or 0)
        v2 = (pointer.get("v2Checkpoint") or {}).get("path")
        if v2:
            complete = v2 in names
        elif parts:
            complete = all(
                f"{prefix}{i:010d}.{parts:010d}.parquet" in names for i in range(1, parts + 1)
            )
        else:
            complete = f"{prefix}parquet" in names
        if complete:
            self._place_log_file(current, data, st)

    # --- status ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The status document (``standby/status.json``; :mod:`metrics` renders it)."""
        lags = sorted(self.lags)
        max_lag = self.cfg.standby.max_lag_s
        tables: dict[str, Any] = {}
        for name, s in sorted(self.tables.items()):
            tables[name] = {
                "path": s.rel,
                "primary_version": s.primary_version,
                "standby_version": s.standby_version,
                "lag_s": round(s.lag_s, 3),
                "last_ship_lag_s": None
                if s.last_ship_lag_s is None
                else round(s.last_ship_lag_s, 3),
                "last_shipped_at": _iso(s.last_shipped_at),
                "versions_shipped": s.shipped,
                "files_copied": s.files_copied,
                "bytes_copied": s.bytes_copied,
                "error": s.error,
                "dropped_on_primary": s.dropped_on_primary,
            }
        live = [t for t in tables.values() if not t["dropped_on_primary"]]
        healthy = self.state == "running" and all(
            t["error"] is None and t["lag_s"] <= max_lag for t in live
        )
        return {
            "format": 1,
            "state": self.state,
            "healthy": healthy,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "source": str(self.site.source),
            "target": str(self.site.root),
            "started_at": _iso(self.started_at),
            "updated_at": _iso(time.time()),
            "cycles": self.cycles,
            "poll_interval_s": self.cfg.standby.poll_interval_s,
            "max_lag_s": max_lag,
            "lag": {
                "samples": len(lags),
                "p50_s": _quantile(lags, 0.50),
                "p99_s": _quantile(lags, 0.99),
                "max_s": round(lags[-1], 3) if lags else None,
            },
            "lag_histogram": self.histogram.to_json(),
            "tables": tables,
        }

    def write_status(self) -> None:
        doc = self.status()
        meta = self.site.meta
        write_atomic(meta / STATUS, json.dumps(doc, indent=1).encode("utf-8"))
        write_atomic(meta / METRICS, metrics.render(doc).encode("utf-8"))


def _whole(name: str, data: bytes) -> bool:
    """Whether a checkpoint, sidecar or checksum file's bytes are complete."""
    if name.endswith(".parquet"):
        return len(data) >= 12 and data[:4] == b"PAR1" and data[-4:] == b"PAR1"
    try:
        parse_commit(data)
    except ValueError:
        return False
    return True


def read_status(cfg: Settings) -> dict[str, Any] | None:
    """The last status the shipper wrote (None before the first cycle)."""
    return read_json(site(cfg).meta / STATUS)


def _newest_commit(log: Path) -> int | None:
    try:
        names = os.listdir(log)
    except FileNotFoundError:
        return None
    versions = [int(m.group(1)) for n in names if (m := _COMMIT.match(n))]
    return max(versions) if versions else None


def commits(log: Path) -> Iterator[int]:
    """Commit versions in a log folder, ascending."""
    try:
        names = os.listdir(log)
    except FileNotFoundError:
        return iter(())
    return iter(sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n))))


def _quantile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return round(sorted_values[rank], 3)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
