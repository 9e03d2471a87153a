"""The knowledge base: a tree of documents (project docs, data dictionary, data-quality
rules, terminology notes, hospital SOPs) with bilingual search and per-folder permissions.
Reference: docs/knowledge-base.md."""

from __future__ import annotations

from pathlib import Path

from lakehouse.knowledge.access import OPERATOR, FolderAccess, FolderRule, Operator, Reader
from lakehouse.knowledge.base import (
    Failure,
    KbDocument,
    KbHit,
    KnowledgeBase,
    SyncReport,
    tree_path,
    user_folder,
)
from lakehouse.settings import Settings

__all__ = [
    "OPERATOR",
    "Failure",
    "FolderAccess",
    "FolderRule",
    "KbDocument",
    "KbHit",
    "KnowledgeBase",
    "Operator",
    "Reader",
    "SyncReport",
    "knowledge_base",
    "knowledge_root",
    "tree_path",
    "user_folder",
]


def knowledge_root(cfg: Settings) -> Path:
    """``knowledge.root`` (relative: under data_dir), default ``<data_dir>/knowledge``."""
    root = cfg.knowledge.root
    if root is None:
        return cfg.data_dir / "knowledge"
    return root if root.is_absolute() else cfg.data_dir / root


def project_home() -> Path | None:
    """The checkout whose docs/ make the project section (None when not installed from one)."""
    home = Path(__file__).resolve().parent.parent.parent
    return home if (home / "docs").is_dir() else None


def knowledge_base(cfg: Settings) -> KnowledgeBase:
    """The configured knowledge base (not synced yet: the first use syncs)."""
    return KnowledgeBase(
        knowledge_root(cfg),
        cfg.data_dir / "search" / "knowledge.db",
        home=project_home(),
        max_bytes=int(cfg.knowledge.max_file_mb * 1024 * 1024),
        refresh_s=cfg.knowledge.refresh_s,
    )
