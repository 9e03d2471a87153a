"""The manifest of a backup: what it holds, where each file's bytes are, and their checksums.

One folder per backup under the destination, ``<id>/manifest.json`` plus
``manifest.json.sha256``; a backup being written is ``<id>.partial`` and becomes ``<id>`` by
one rename when complete, so a listed backup is always whole. An incremental backup's
manifest lists every file of its pinned versions like a full one; ``stored_in`` names the
backup (itself or an ancestor) whose folder holds the bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from lakehouse.errors import ErrorCode, error

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20

Kind = Literal["full", "incremental"]


@dataclass(frozen=True)
class FileEntry:
    """One file of a table version or of a state item."""

    path: str  # relative to the table folder / the state item's root (POSIX)
    size: int
    sha256: str
    stored_in: str  # id of the backup whose folder holds the bytes


@dataclass
class TableEntry:
    """One Delta table pinned at one version."""

    name: str
    location: str  # absolute local path of the table folder at backup time
    version: int
    table_id: str
    rows: int
    checksum: str  # sum of xxhash64 over all columns, as a decimal string
    deleted_file_retention_s: float
    files: list[FileEntry] = field(default_factory=list)

    def file_map(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}


@dataclass
class StateEntry:
    """One piece of local state: a SQLite database, a file or a folder."""

    name: str
    kind: Literal["sqlite", "folder", "pg_dump"]
    source: str
    files: list[FileEntry] = field(default_factory=list)


@dataclass
class Manifest:
    id: str
    kind: Kind
    parent: str | None
    created_at: str  # ISO 8601, UTC
    lakehouse_version: str
    warehouse: str
    data_dir: str
    tables: list[TableEntry] = field(default_factory=list)
    state: list[StateEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    format: int = FORMAT

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.name == name), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True, ensure_ascii=False)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> Manifest:
        tables = [
            TableEntry(**{**t, "files": [FileEntry(**f) for f in t["files"]]})
            for t in raw.pop("tables")
        ]
        state = [
            StateEntry(**{**s, "files": [FileEntry(**f) for f in s["files"]]})
            for s in raw.pop("state")
        ]
        return Manifest(**raw, tables=tables, state=state)


def sha256_file(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def copy_file(src: Path, dst: Path) -> tuple[int, str]:
    """Stream ``src`` to ``dst`` (fsync'd), hashing the bytes on the way: (size, SHA-256)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    return size, digest.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> None:
    text = manifest.to_json().encode("utf-8")
    (folder / MANIFEST).write_bytes(text)
    (folder / f"{MANIFEST}.sha256").write_text(
        f"{hashlib.sha256(text).hexdigest()}  {MANIFEST}\n", encoding="utf-8"
    )


def read_manifest(destination: Path, backup_id: str) -> Manifest:
    """The manifest of one complete backup; ``LH-BAK-001`` absent, ``LH-BAK-002`` damaged."""
    folder = destination / backup_id
    path = folder / MANIFEST
    if not path.is_file():
        raise error(ErrorCode.BACKUP_NOT_FOUND, name=backup_id, path=str(destination))
    data = path.read_bytes()
    sums = folder / f"{MANIFEST}.sha256"
    expected = sums.read_text(encoding="utf-8").split()[0] if sums.is_file() else ""
    if hashlib.sha256(data).hexdigest() != expected:
        raise error(
            ErrorCode.BACKUP_CORRUPT,
            name=backup_id,
            file=MANIFEST,
            reason="its SHA-256 differs from manifest.json.sha256",
        )
    return Manifest.from_dict(json.loads(data))


def list_manifests(destination: Path) -> list[Manifest]:
    """Every complete backup in ``destination``, oldest first (partial ones are ignored)."""
    if not destination.is_dir():
        return []
    found = [
        read_manifest(destination, p.name)
        for p in destination.iterdir()
        if p.is_dir() and not p.name.endswith(".partial") and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda m: (m.created_at, m.id))


def chain(destination: Path, manifest: Manifest) -> Iterator[Manifest]:
    """``manifest`` and its ancestors up to the full backup it builds on."""
    current: Manifest | None = manifest
    seen: set[str] = set()
    while current is not None:
        if current.id in seen:
            raise error(
                ErrorCode.BACKUP_CORRUPT, name=current.id, file=MANIFEST, reason="parent cycle"
            )
        seen.add(current.id)
        yield current
        current = read_manifest(destination, current.parent) if current.parent else None


def table_file(destination: Path, table: str, entry: FileEntry) -> Path:
    """Where the bytes of a table file are kept in the backup set."""
    return destination / entry.stored_in / "tables" / table / entry.path


def state_file(destination: Path, item: str, entry: FileEntry) -> Path:
    return destination / entry.stored_in / "state" / item / entry.path
