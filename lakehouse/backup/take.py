"""``lakehouse backup``: a consistent full or incremental backup of tables and local state.

Each table is pinned at its newest version; the files that version references are read from
its Delta log (:mod:`lakehouse.backup.delta_log`) and streamed to the backup folder with
their SHA-256; its row count and order-independent checksum are computed in Spark at the
pinned version. An incremental backup copies only the files its parent chain does not
already hold. ADR 0018 has the reasons.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructType

from lakehouse import __version__
from lakehouse.backup import state as local_state
from lakehouse.backup.delta_log import interval_seconds, snapshot
from lakehouse.backup.manifest import (
    FileEntry,
    Kind,
    Manifest,
    StateEntry,
    TableEntry,
    chain,
    copy_file,
    list_manifests,
    sha256_file,
    write_manifest,
)
from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings
from lakehouse.tables.spec import quote_name
from lakehouse.tables.versions import latest_version

logger = logging.getLogger(__name__)

#: Delta's default for delta.deletedFileRetentionDuration.
DEFAULT_RETENTION = "interval 1 week"


@dataclass(frozen=True)
class BackupReport:
    """What one backup did."""

    id: str
    kind: Kind
    path: Path
    tables: int
    files_copied: int
    bytes_copied: int
    files_reused: int
    seconds: float
    pruned: tuple[str, ...] = ()


def destination(cfg: Settings) -> Path:
    """The backup folder of ``cfg`` (default ``<data_dir>-backups``, beside the data)."""
    dest = cfg.backup.destination
    if dest is None:
        return cfg.data_dir.with_name(cfg.data_dir.name + "-backups")
    return dest if dest.is_absolute() else cfg.data_dir / dest


def _has_map(data_type: DataType) -> bool:
    if isinstance(data_type, MapType):
        return True
    if isinstance(data_type, StructType):
        return any(_has_map(f.dataType) for f in data_type.fields)
    if isinstance(data_type, ArrayType):
        return _has_map(data_type.elementType)
    return False


def table_fingerprint(df: DataFrame) -> tuple[int, str]:
    """(row count, checksum) of ``df``: the sum of a 64-bit hash of every row over all
    columns, as an exact decimal, so row order and file layout do not matter. One Spark job.

    Spark cannot hash maps: a top-level map is hashed as its sorted entries, a map nested
    deeper as its JSON text (the same files give the same text).
    """
    cols: list[Column] = []
    for f in df.schema.fields:
        ref = F.col(f"`{f.name}`")
        if isinstance(f.dataType, MapType) and not _has_map(f.dataType.valueType):
            cols.append(F.array_sort(F.map_entries(ref)))
        elif _has_map(f.dataType):
            cols.append(F.to_json(ref))
        else:
            cols.append(ref)
    row_hash = F.xxhash64(*cols).cast("decimal(38,0)")
    got = df.agg(F.count(F.lit(1)).alias("n"), F.sum(row_hash).alias("s")).first()
    assert got is not None
    return int(got["n"]), str(got["s"] if got["s"] is not None else 0)


def local_path(location: str, *, table: str) -> Path:
    """The local folder of a table location (``file:`` URI or path); other storage is not
    supported by this backup (its snapshots are the storage team's, docs/operations.md)."""
    parts = urlsplit(location)
    if parts.scheme not in ("", "file"):
        raise error(
            ErrorCode.BACKUP_UNSUPPORTED,
            name=table,
            reason=f"storage scheme {parts.scheme} (only local and mounted paths)",
        )
    return Path(unquote(parts.path))


def catalog_tables(spark: SparkSession) -> list[str]:
    """Every Delta table of the catalog (views and other formats left out), sorted."""
    names: list[str] = []
    for db in spark.catalog.listDatabases():
        for t in spark.catalog.listTables(db.name):
            if t.tableType == "VIEW" or t.isTemporary:
                continue
            name = f"{db.name}.{t.name}"
            row = spark.sql(f"DESCRIBE DETAIL {quote_name(name)}").select("format").first()
            if row is not None and row["format"] == "delta":
                names.append(name)
    return sorted(names)


def _detail(spark: SparkSession, name: str) -> tuple[str, dict[str, str]]:
    if not spark.catalog.tableExists(name):
        raise error(ErrorCode.TABLE_NOT_FOUND, table=name)
    detail = spark.sql(f"DESCRIBE DETAIL {quote_name(name)}")
    row = detail.select("format", "location", "properties").first()
    assert row is not None
    if row["format"] != "delta":
        raise error(ErrorCode.BACKUP_UNSUPPORTED, name=name, reason=f"{row['format']} table")
    return str(row["location"]), dict(row["properties"] or {})


def check_retention(cfg: Settings, table: str, properties: dict[str, str]) -> float:
    """Seconds ``table`` keeps removed files; ``LH-BAK-004`` (or a warning) when that is not
    longer than the backup interval."""
    text = properties.get("delta.deletedFileRetentionDuration", DEFAULT_RETENTION)
    try:
        seconds = interval_seconds(text)
    except ValueError:
        seconds = 0.0
    interval = cfg.backup.interval_hours * 3600
    if seconds <= interval:
        if cfg.backup.retention_check == "fail":
            raise error(
                ErrorCode.BACKUP_RETENTION_TOO_SHORT,
                table=table,
                found=text,
                expected=f"{cfg.backup.interval_hours:g} hours",
            )
        logger.warning(
            "table %s keeps removed files for %s, not longer than the backup interval %g h",
            table,
            text,
            cfg.backup.interval_hours,
        )
    return seconds


def _new_id(kind: Kind, existing: set[str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup_id = f"{stamp}-{'full' if kind == 'full' else 'incr'}"
    assert backup_id not in existing
    return backup_id


def take_backup(
    spark: SparkSession,
    cfg: Settings,
    *,
    tables: list[str] | None = None,
    incremental: bool = False,
    include_secrets: bool = False,
    include_state: bool = True,
) -> BackupReport:
    """Back up ``tables`` (default: every Delta table of the catalog) and the local state.

    Written to ``<destination>/<id>.partial`` and renamed to ``<id>`` when complete; after a
    full backup, fulls beyond ``backup.keep_full`` and their incrementals are deleted.
    """
    t0 = time.perf_counter()
    dest = destination(cfg)
    dest.mkdir(parents=True, exist_ok=True)
    previous = list_manifests(dest)
    parent = previous[-1] if incremental and previous else None
    if incremental and parent is None:
        raise error(ErrorCode.BACKUP_NO_PARENT, path=str(dest))
    kind: Kind = "incremental" if incremental else "full"
    backup_id = _new_id(kind, {m.id for m in previous})
    work = dest / f"{backup_id}.partial"
    work.mkdir()
    manifest = Manifest(
        id=backup_id,
        kind=kind,
        parent=parent.id if parent else None,
        created_at=datetime.now(UTC).isoformat(),
        lakehouse_version=__version__,
        warehouse=str(local_path(cfg.warehouse, table="warehouse")),
        data_dir=str(cfg.data_dir),
    )
    # What the parent chain holds, per (table, Delta table id): reused, not copied again.
    held: dict[tuple[str, str], dict[str, FileEntry]] = {}
    held_state: dict[tuple[str, str], FileEntry] = {}
    newest: dict[tuple[str, str], TableEntry] = {}
    if parent is not None:
        for m in reversed(list(chain(dest, parent))):
            for t in m.tables:
                held.setdefault((t.name, t.table_id), {}).update(t.file_map())
                newest[(t.name, t.table_id)] = t
            for s in m.state:
                held_state.update({(s.name, f.path): f for f in s.files})
    copied = reused = nbytes = 0
    try:
        # State first: the audit head anchor must not be newer than the pinned audit table.
        if include_state:
            for item in local_state.state_items(cfg, include_secrets=include_secrets):
                staging = work / "state" / item.name
                if not local_state.snapshot_item(cfg, item, staging):
                    manifest.skipped.append(f"state {item.name}: absent")
                    continue
                entry = StateEntry(item.name, item.kind, str(item.path))
                for f in sorted(p for p in staging.rglob("*") if p.is_file()):
                    size, digest = sha256_file(f)
                    rel = f.relative_to(staging).as_posix()
                    same = held_state.get((item.name, rel))
                    if same is not None and (same.size, same.sha256) == (size, digest):
                        f.unlink()  # unchanged since the parent: keep the parent's copy
                        entry.files.append(same)
                        reused += 1
                        continue
                    entry.files.append(FileEntry(rel, size, digest, backup_id))
                    copied, nbytes = copied + 1, nbytes + size
                manifest.state.append(entry)
        names = tables if tables is not None else catalog_tables(spark)
        details = {name: _detail(spark, name) for name in names}
        retention = {n: check_retention(cfg, n, props) for n, (_, props) in details.items()}
        for name in names:
            location, _ = details[name]
            folder = local_path(location, table=name)
            version = latest_version(spark, name)
            assert version is not None, name
            snap = snapshot(folder, version, table=name)
            prior = newest.get((name, snap.table_id))
            if prior is not None and prior.version == version:
                rows, checksum = prior.rows, prior.checksum  # unchanged: no scan
            else:
                reader = spark.read.format("delta").option("versionAsOf", version)
                rows, checksum = table_fingerprint(reader.load(str(folder)))
            entry_t = TableEntry(
                name=name,
                location=str(folder),
                version=version,
                table_id=snap.table_id,
                rows=rows,
                checksum=checksum,
                deleted_file_retention_s=retention[name],
            )
            have = held.get((name, snap.table_id), {})
            for rel in snap.all_files:
                src = folder / rel
                old = have.get(rel)
                if old is not None and rel.startswith("_delta_log/"):
                    size, digest = sha256_file(src)  # small; a rewritten log file differs
                    if (size, digest) == (old.size, old.sha256):
                        entry_t.files.append(old)
                        reused += 1
                        continue
                elif old is not None and src.stat().st_size == old.size:
                    entry_t.files.append(old)  # data and DV files are never rewritten
                    reused += 1
                    continue
                size, digest = copy_file(src, work / "tables" / name / rel)
                entry_t.files.append(FileEntry(rel, size, digest, backup_id))
                copied, nbytes = copied + 1, nbytes + size
            manifest.tables.append(entry_t)
            logger.info(
                "backup %s: %s version %d, %d rows, %d files",
                backup_id,
                name,
                version,
                rows,
                len(entry_t.files),
            )
        write_manifest(work, manifest)
        work.rename(dest / backup_id)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    pruned = prune(dest, cfg.backup.keep_full) if kind == "full" else ()
    report = BackupReport(
        id=backup_id,
        kind=kind,
        path=dest / backup_id,
        tables=len(manifest.tables),
        files_copied=copied,
        bytes_copied=nbytes,
        files_reused=reused,
        seconds=time.perf_counter() - t0,
        pruned=pruned,
    )
    logger.info(
        "backup %s (%s): %d tables, %d files copied (%d bytes), %d reused, %.1fs",
        backup_id,
        kind,
        report.tables,
        copied,
        nbytes,
        reused,
        report.seconds,
    )
    return report


def prune(dest: Path, keep_full: int) -> tuple[str, ...]:
    """Delete fulls beyond the newest ``keep_full`` and the incrementals built on them."""
    manifests = list_manifests(dest)
    fulls = [m for m in manifests if m.kind == "full"]
    doomed = {m.id for m in fulls[: max(0, len(fulls) - keep_full)]}
    if not doomed:
        return ()
    for m in manifests:  # oldest first: a parent is decided before its children
        if m.parent in doomed:
            doomed.add(m.id)
    for backup_id in sorted(doomed):
        shutil.rmtree(dest / backup_id)
        logger.info("backup %s deleted by retention (keep %d fulls)", backup_id, keep_full)
    return tuple(sorted(doomed))
