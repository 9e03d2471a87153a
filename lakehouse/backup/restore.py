"""``lakehouse restore``: put every table and the local state back from one backup, in one
step, and prove it.

Order: choose the backup (``--backup ID``, ``--to TIME`` or the newest); check the SHA-256 of
every file it needs across its chain before anything is touched (``LH-BAK-002``); per table,
assemble the pinned version in a staging folder beside the table's folder, drop the
metastore entry, swap the folder in by rename and register the table again with ``CREATE
TABLE ... USING DELTA LOCATION`` (the metastore database is never copied); put the local
state back; then verify every table against the manifest (version, row count, checksum and,
with ``backup.verify_files``, every restored file's SHA-256), ``LH-BAK-005`` on a mismatch.
Running it again gives the same result.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pyspark.sql import SparkSession

from lakehouse.backup import state as local_state
from lakehouse.backup.manifest import (
    Manifest,
    TableEntry,
    chain,
    list_manifests,
    read_manifest,
    sha256_file,
    state_file,
    table_file,
)
from lakehouse.backup.take import destination, local_path, table_fingerprint
from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings
from lakehouse.tables.spec import quote_name
from lakehouse.tables.versions import latest_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreReport:
    """What one restore did."""

    backup_id: str
    tables: tuple[str, ...]
    state: tuple[str, ...]
    files: int
    bytes: int
    seconds: float


def choose_backup(
    cfg: Settings, *, backup_id: str | None = None, to: str | None = None
) -> Manifest:
    """The backup named, the newest taken at or before ``to`` (ISO time; without a zone,
    the hospital's), or the newest of all."""
    dest = destination(cfg)
    if backup_id is not None:
        return read_manifest(dest, backup_id)
    manifests = list_manifests(dest)
    if to is not None:
        try:
            when = datetime.fromisoformat(to)
        except ValueError:
            raise error(
                ErrorCode.BACKUP_NOT_FOUND, name=f"at {to!r} (not an ISO time)", path=str(dest)
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo(cfg.timezone))
        manifests = [m for m in manifests if m.created <= when]
    if not manifests:
        raise error(
            ErrorCode.BACKUP_NOT_FOUND, name="at that time" if to else "(any)", path=str(dest)
        )
    return manifests[-1]


def target_location(entry: TableEntry, manifest: Manifest, warehouse: Path) -> Path:
    """Where a table goes: the same place under the current warehouse when it was under the
    backup's warehouse (restoring into a new data folder), else its recorded folder."""
    location, old = Path(entry.location), Path(manifest.warehouse)
    if location.is_relative_to(old):
        return warehouse / location.relative_to(old)
    return location


def _verify_backup(dest: Path, manifest: Manifest, tables: list[TableEntry]) -> tuple[int, int]:
    """Check every needed file's size and SHA-256; (files, bytes). Reads, changes nothing."""
    count = nbytes = 0
    checks = [(t.name, f, table_file(dest, t.name, f)) for t in tables for f in t.files]
    checks += [(s.name, f, state_file(dest, s.name, f)) for s in manifest.state for f in s.files]
    for owner, entry, path in checks:
        if not path.is_file():
            reason = "is missing"
        else:
            size, digest = sha256_file(path)
            if size != entry.size:
                reason = f"has {size} bytes, the manifest says {entry.size} (truncated?)"
            elif digest != entry.sha256:
                reason = "has a SHA-256 other than the manifest's"
            else:
                count, nbytes = count + 1, nbytes + size
                continue
        raise error(
            ErrorCode.BACKUP_CORRUPT,
            name=entry.stored_in,
            file=f"{owner}/{entry.path}",
            reason=reason,
        )
    return count, nbytes


def _restore_table(spark: SparkSession, dest: Path, entry: TableEntry, target: Path) -> None:
    staging = target.with_name(f".{target.name}.restore")
    shutil.rmtree(staging, ignore_errors=True)
    for f in entry.files:
        dst = staging / f.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(table_file(dest, entry.name, f), dst)
    # Drop the name first: dropping a managed table deletes its folder, which is replaced.
    spark.sql(f"DROP TABLE IF EXISTS {quote_name(entry.name)}")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    register_table(spark, entry.name, target)


def register_table(spark: SparkSession, name: str, folder: Path) -> None:
    """Register the Delta table in ``folder`` as ``name`` (an external table), after
    clearing Delta's in-JVM log cache: the folder may now hold another history."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    schema = name.split(".", 1)[0]
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{schema}`")
    location = folder.as_uri().replace("'", "\\'")
    spark.sql(f"CREATE TABLE {quote_name(name)} USING DELTA LOCATION '{location}'")


def verify_table(
    spark: SparkSession, dest: Path, entry: TableEntry, target: Path, *, files: bool
) -> None:
    """``LH-BAK-005`` unless the registered table is the manifest's version, rows, checksum
    (and, with ``files``, every file's SHA-256)."""

    def fail(reason: str, expected: object, found: object) -> Exception:
        return error(
            ErrorCode.BACKUP_VERIFY_FAILED,
            table=entry.name,
            reason=reason,
            expected=str(expected),
            found=str(found),
        )

    version = latest_version(spark, entry.name)
    if version != entry.version:
        raise fail("version", entry.version, version)
    rows, checksum = table_fingerprint(spark.table(entry.name))
    if rows != entry.rows:
        raise fail("row count", entry.rows, rows)
    if checksum != entry.checksum:
        raise fail("checksum", entry.checksum, checksum)
    if files:
        for f in entry.files:
            path = target / f.path
            got = sha256_file(path) if path.is_file() else (0, "missing")
            if got != (f.size, f.sha256):
                raise fail(f"file {f.path}", f.sha256, got[1])


def restore(
    spark: SparkSession,
    cfg: Settings,
    *,
    backup_id: str | None = None,
    to: str | None = None,
    tables: list[str] | None = None,
    include_state: bool = True,
) -> RestoreReport:
    """Restore ``tables`` (default: every table of the backup) and the local state."""
    t0 = time.perf_counter()
    dest = destination(cfg)
    manifest = choose_backup(cfg, backup_id=backup_id, to=to)
    list(chain(dest, manifest))  # every ancestor's manifest is present and intact
    chosen = manifest.tables
    if tables is not None:
        missing = sorted(set(tables) - {t.name for t in chosen})
        if missing:
            raise error(ErrorCode.TABLE_NOT_FOUND, table=", ".join(missing))
        chosen = [t for t in chosen if t.name in set(tables)]
    if not include_state:
        manifest.state = []
    files, nbytes = _verify_backup(dest, manifest, chosen)
    logger.info("restore %s: %d files (%d bytes) verified", manifest.id, files, nbytes)
    warehouse = local_path(cfg.warehouse, table="warehouse")
    targets = {t.name: target_location(t, manifest, warehouse) for t in chosen}
    for t in chosen:
        _restore_table(spark, dest, t, targets[t.name])
        logger.info("restore %s: %s version %d in place", manifest.id, t.name, t.version)
    places = {i.name: i for i in local_state.state_items(cfg, include_secrets=True)}
    restored_state = []
    for s in manifest.state:
        item = places.get(s.name)
        if item is None or item.kind != s.kind:
            raise error(
                ErrorCode.BACKUP_UNSUPPORTED,
                name=s.name,
                reason="the current settings have no such local state (another backend?)",
            )
        if s.kind == "pg_dump":
            logger.warning("restore %s: %s is a pg_dump file for the DBA", manifest.id, s.name)
            continue
        local_state.place({f.path: state_file(dest, s.name, f) for f in s.files}, item.path, s.kind)
        restored_state.append(s.name)
    for t in chosen:
        verify_table(spark, dest, t, targets[t.name], files=cfg.backup.verify_files)
    report = RestoreReport(
        backup_id=manifest.id,
        tables=tuple(t.name for t in chosen),
        state=tuple(restored_state),
        files=files,
        bytes=nbytes,
        seconds=time.perf_counter() - t0,
    )
    logger.info(
        "restore %s: %d tables and %d state items restored and verified in %.1fs",
        manifest.id,
        len(report.tables),
        len(report.state),
        report.seconds,
    )
    return report
