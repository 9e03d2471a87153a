"""Local state outside the Delta tables that a restore needs back.

SQLite databases (local accounts, the MLflow backend store) are copied with SQLite's online
backup API: a consistent copy while services keep writing. Folders (the audit head anchor
and journal, MLflow artifacts, the knowledge base's documents, and secrets only when asked)
are copied file by file. A PostgreSQL MLflow store is dumped by ``pg_dump`` when
``backup.pg_dump`` is set; otherwise it is the DBA's (docs/operations.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings

StateKind = Literal["sqlite", "folder", "pg_dump"]


@dataclass(frozen=True)
class StateItem:
    """One piece of local state and where it lives under the current settings."""

    name: str
    kind: StateKind
    path: Path  # the database file, the folder, or (pg_dump) the dump's file name
    secret_uri: str = ""  # pg_dump: the database URL (secret; never logged)


def _mlflow_paths(cfg: Settings) -> tuple[str, str]:
    # Imported here: the tracking package imports MLflow's client lazily, but keep the
    # backup module importable where MLflow is not installed.
    from lakehouse.tracking.server import artifacts_destination, backend_store_uri

    return backend_store_uri(cfg), artifacts_destination(cfg)


def state_items(cfg: Settings, *, include_secrets: bool = False) -> list[StateItem]:
    """The local state of ``cfg``, in backup order (the audit folder first: its head anchor
    must not be newer than the pinned audit table, see ADR 0018)."""
    assert cfg.security.accounts_db is not None
    assert cfg.security.secrets_dir is not None
    items = [
        StateItem("audit", "folder", cfg.data_dir / "audit"),
        StateItem("accounts", "sqlite", cfg.security.accounts_db),
    ]
    backend, artifacts = _mlflow_paths(cfg)
    if backend.startswith("sqlite:///"):
        items.append(StateItem("mlflow-db", "sqlite", Path(backend.removeprefix("sqlite:///"))))
    elif cfg.backup.pg_dump is not None:
        items.append(StateItem("mlflow-db", "pg_dump", Path("mlflow.dump"), secret_uri=backend))
    if "://" not in artifacts:
        items.append(StateItem("mlflow-artifacts", "folder", Path(artifacts)))
    root = cfg.knowledge.root or Path("knowledge")
    items.append(
        StateItem("knowledge", "folder", root if root.is_absolute() else cfg.data_dir / root)
    )
    if include_secrets:
        items.append(StateItem("secrets", "folder", cfg.security.secrets_dir))
    return items


def sqlite_backup(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def pg_dump(cfg: Settings, uri: str, dst: Path) -> None:
    """Custom-format dump of the database at ``uri`` (a SQLAlchemy or libpq URL); the
    password travels in PGPASSWORD, never on the command line."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0]
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    libpq = urlunsplit(parts._replace(scheme=scheme, netloc=netloc))
    env = cfg.backup.pg_environment(parts.password or "")
    assert cfg.backup.pg_dump is not None
    dst.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            str(cfg.backup.pg_dump),
            "--format=custom",
            "--no-owner",
            f"--file={dst}",
            f"--dbname={libpq}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise error(
            ErrorCode.BACKUP_STATE_FAILED,
            name="mlflow-db",
            reason=f"pg_dump exited with status {done.returncode}",
        )


def snapshot_item(cfg: Settings, item: StateItem, staging: Path) -> bool:
    """Copy ``item`` into ``staging`` (a fresh folder); False when the item does not exist."""
    try:
        if item.kind == "sqlite":
            if not item.path.is_file():
                return False
            sqlite_backup(item.path, staging / item.path.name)
        elif item.kind == "pg_dump":
            pg_dump(cfg, item.secret_uri, staging / item.path.name)
        else:
            if not item.path.is_dir():
                return False
            for src in sorted(item.path.rglob("*")):
                if src.is_file() and not src.is_symlink():
                    dst = staging / src.relative_to(item.path)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
    except sqlite3.Error as exc:
        raise error(
            ErrorCode.BACKUP_STATE_FAILED, name=item.name, reason=type(exc).__name__
        ) from exc
    except OSError as exc:
        raise error(
            ErrorCode.BACKUP_STATE_FAILED, name=item.name, reason=exc.strerror or "I/O error"
        ) from exc
    return True


def place(source_files: dict[str, Path], target: Path, kind: StateKind) -> None:
    """Put restored state where it belongs, replacing what is there in one rename.

    ``source_files`` maps each file's relative path to its verified copy in the backup.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        ((_, src),) = source_files.items()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        shutil.copy2(src, tmp)
        for suffix in ("-wal", "-shm", "-journal"):  # stale companions of the old database
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
        return
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restore-"))
    for rel, src in source_files.items():
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)
