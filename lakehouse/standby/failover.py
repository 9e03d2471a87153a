"""``lakehouse failover``: stop shipping, prove the standby complete, promote it.

Order: write ``standby/PROMOTE-REQUESTED`` (a running shipper stops after its current cycle,
and no shipper starts again) and wait for the shipper's lock; check every standby table:
its commits are contiguous, each parses, and every file any of its versions references is
present with the size its log gives (``LH-STB-007``, nothing registered when one fails);
register each table in the catalog of the Spark session given (the standby site's
metastore) with ``CREATE TABLE ... USING DELTA LOCATION`` (a name already registered at
another location is ``LH-STB-008``); check Delta reads the newest shipped version; write
``standby/PROMOTED``. Tables the shipper saw dropped on the primary are left unregistered.
Running it again is harmless: tables already registered at the standby folder are kept.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.backup.restore import register_table
from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.settings import Settings
from lakehouse.standby.ship import commit_name, commits, parse_commit, referenced_files
from lakehouse.standby.site import (
    LOG_DIR,
    PROMOTE_REQUEST,
    PROMOTED,
    STATUS,
    ShipperLock,
    discover,
    read_json,
    site,
    wanted,
    write_atomic,
)
from lakehouse.tables.spec import quote_name
from lakehouse.tables.versions import latest_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableCheck:
    """A standby table proven complete: its versions and the files checked."""

    name: str
    folder: Path
    first_version: int
    last_version: int
    files: int


@dataclass(frozen=True)
class FailoverReport:
    tables: tuple[TableCheck, ...]
    skipped: tuple[str, ...]  # dropped on the primary: kept on disk, not registered
    promoted_at: str
    seconds: float


def check_table(name: str, folder: Path) -> TableCheck:
    """``LH-STB-007`` unless every version in the standby log of ``folder`` is complete."""
    log = folder / LOG_DIR
    versions = list(commits(log))

    def incomplete(version: int, reason: str) -> LakehouseError:
        return error(ErrorCode.STANDBY_INCOMPLETE, table=name, version=version, reason=reason)

    if not versions:
        raise incomplete(0, "no commit")
    first, last = versions[0], versions[-1]
    if versions != list(range(first, last + 1)):
        gap = next(v for v in range(first, last + 1) if v not in set(versions))
        raise incomplete(gap, "its commit is missing")
    checked = 0
    if first > 0:  # seeded from a checkpoint: the checkpoint's files
        from lakehouse.backup.delta_log import snapshot

        try:
            base = snapshot(folder, first, table=name)
        except LakehouseError as exc:
            reason = f"the seed checkpoint cannot be read ({exc.code.value.id})"
            raise incomplete(first, reason) from None
        for rel in (*base.data_files, *base.dv_files):
            if not (folder / rel).is_file():
                raise incomplete(first, f"file {rel} is missing")
            checked += 1
    for v in versions[1:] if first > 0 else versions:
        try:
            files = referenced_files(parse_commit((log / commit_name(v)).read_bytes()))
        except (OSError, ValueError, KeyError) as exc:
            raise incomplete(v, f"its commit cannot be read ({type(exc).__name__})") from None
        for rel, size in files.items():
            path = folder / rel
            if not path.is_file():
                raise incomplete(v, f"file {rel} is missing")
            if size is not None and path.stat().st_size != size:
                raise incomplete(v, f"file {rel} has {path.stat().st_size} bytes, not {size}")
            checked += 1
    return TableCheck(name, folder, first, last, checked)


def _location(spark: SparkSession, name: str) -> Path | None:
    if not spark.catalog.tableExists(name):
        return None
    row = spark.sql(f"DESCRIBE DETAIL {quote_name(name)}").select("location").first()
    assert row is not None
    return Path(str(row["location"]).removeprefix("file:")).resolve()


def failover(spark: SparkSession, cfg: Settings, *, wait_s: float | None = None) -> FailoverReport:
    """Promote the standby of ``cfg`` into the catalog of ``spark`` (the standby site's)."""
    t0 = time.perf_counter()
    st = site(cfg)
    st.meta.mkdir(parents=True, exist_ok=True)
    request = st.meta / PROMOTE_REQUEST
    if not request.exists():
        write_atomic(request, f"{datetime.now(UTC).isoformat()} {socket.gethostname()}\n".encode())
    lock = ShipperLock(st.meta)
    wait = cfg.standby.failover_wait_s if wait_s is None else wait_s
    if not lock.acquire(wait_s=wait):
        raise error(ErrorCode.STANDBY_STILL_SHIPPING, found=f"{wait:g}", path=str(lock.path))
    try:
        status = read_json(st.meta / STATUS) or {}
        dropped = {
            n for n, t in (status.get("tables") or {}).items() if t.get("dropped_on_primary")
        }
        found = discover(st.warehouse) or {}
        names = sorted(
            n
            for n in found
            if n not in dropped and wanted(n, cfg.standby.include, cfg.standby.exclude)
        )
        checks = [check_table(n, st.warehouse / found[n]) for n in names]  # all, first
        for c in checks:
            where = _location(spark, c.name)
            if where is None:
                register_table(spark, c.name, c.folder)
            elif where != c.folder.resolve():
                raise error(ErrorCode.STANDBY_NAME_TAKEN, table=c.name, path=str(where))
            version = latest_version(spark, c.name)
            if version != c.last_version:
                raise error(
                    ErrorCode.STANDBY_INCOMPLETE,
                    table=c.name,
                    version=c.last_version,
                    reason=f"Delta reads version {version}",
                )
            logger.info("failover: %s registered at version %d", c.name, c.last_version)
        promoted_at = datetime.now(UTC).isoformat()
        marker = {
            "promoted_at": promoted_at,
            "host": socket.gethostname(),
            "source": status.get("source"),
            "tables": {c.name: c.last_version for c in checks},
            "skipped": sorted(dropped),
        }
        write_atomic(st.meta / PROMOTED, json.dumps(marker, indent=1).encode("utf-8"))
        request.unlink(missing_ok=True)
    finally:
        lock.release()
    report = FailoverReport(
        tables=tuple(checks),
        skipped=tuple(sorted(dropped)),
        promoted_at=promoted_at,
        seconds=time.perf_counter() - t0,
    )
    logger.info("failover: %d tables promoted at %s in %.1fs", len(checks), st.root, report.seconds)
    return report
