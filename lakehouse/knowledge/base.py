"""The knowledge base: a tree of documents, indexed for bilingual search, read per folder.

Tree paths are ``folder/.../name``: ``project/...`` is generated from the repository
(:func:`lakehouse.knowledge.documents.project_documents`, read-only, every signed-in
role), everything else is a file under ``knowledge.root`` (hospital SOPs, added with
``lakehouse kb add``), guarded by ``_access.yaml`` files (:mod:`lakehouse.knowledge.access`).

:meth:`KnowledgeBase.sync` brings the index (:class:`lakehouse.search.SearchIndex`) in line
with the tree: files whose size and modification time are unchanged are not even read,
read files whose content is unchanged are not re-analysed, and a bad document is reported
with its code while the rest are indexed.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.knowledge.access import ACCESS_FILE, PROJECT, FolderAccess, Reader
from lakehouse.knowledge.documents import SUFFIXES, project_documents, read_file
from lakehouse.search import BM25, Analyzer, SearchIndex, Snippet, parse_query
from lakehouse.search.query import MAX_QUERY_CHARS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A document (or access file) that could not be indexed, and why."""

    path: str
    code: str
    message: str


@dataclass
class SyncReport:
    """What one :meth:`KnowledgeBase.sync` did."""

    analysed: int = 0
    unchanged: int = 0
    removed: int = 0
    failures: list[Failure] = field(default_factory=list)

    def describe(self) -> str:
        lines = [
            f"knowledge base: {self.analysed} analysed, {self.unchanged} unchanged, "
            f"{self.removed} removed, {len(self.failures)} failed"
        ]
        lines += [f"  {f.code} {f.path}: {f.message}" for f in self.failures]
        return "\n".join(lines)


@dataclass(frozen=True)
class KbHit:
    """One search result: tree path, title, score, highlighted snippet (HTML) and the
    match spans (offsets into the document's text, as ``GET /api/kb/doc`` returns it)."""

    path: str
    title: str
    score: float
    snippet: Snippet
    section: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "title": self.title,
            "score": self.score,
            "section": self.section,
            "snippet": self.snippet.html,
            "snippet_start": self.snippet.start,
            "snippet_end": self.snippet.end,
            "spans": [list(s) for s in self.snippet.spans],
        }


@dataclass(frozen=True)
class KbDocument:
    """A document as read: tree path, title, kind and text."""

    path: str
    title: str
    kind: str
    text: str


class KnowledgeBase:
    """The tree under ``root`` plus the project section (from ``home``, None: none)."""

    def __init__(
        self,
        root: Path,
        index_path: Path,
        *,
        home: Path | None = None,
        max_bytes: int = 20 * 1024 * 1024,
        refresh_s: float = 60,
        analyzer: Analyzer | None = None,
        bm25: BM25 | None = None,
    ) -> None:
        self.root = root
        self.home = home
        self.max_bytes = max_bytes
        self.refresh_s = refresh_s
        self.index = SearchIndex(index_path, analyzer, bm25=bm25)
        self.access = FolderAccess({})
        self._synced_at: float | None = None
        self._lock = threading.Lock()

    # -- indexing ----------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Index what changed in the tree, drop what disappeared; never raises for a bad
        document (it is in the report's failures and left out of the index)."""
        with self._lock, self.index.batch():
            report = self._sync()
            self._synced_at = time.monotonic()
        logger.info(
            "knowledge base synced: %d analysed, %d unchanged, %d removed, %d failed",
            report.analysed, report.unchanged, report.removed, len(report.failures),
        )  # fmt: skip
        return report

    def refresh(self) -> None:
        """:meth:`sync` if the last one is older than ``refresh_s`` (or never ran)."""
        last = self._synced_at
        if last is None or time.monotonic() - last >= self.refresh_s:
            self.sync()

    def _sync(self) -> SyncReport:
        report = SyncReport()
        access, problems = FolderAccess.load(self.root)
        self.access = access
        for folder, exc in problems:
            path = f"{folder}/{ACCESS_FILE}" if folder else ACCESS_FILE
            report.failures.append(Failure(path, exc.code.id, str(exc)))
        infos = self.index.infos()
        seen: set[str] = set()
        if self.home is not None:
            for doc in project_documents(self.home):
                seen.add(doc.path)
                meta = {"folder": doc.folder, "kind": doc.kind, "section": PROJECT}
                changed = self.index.upsert(doc.path, doc.text, title=doc.title, info=meta)
                report.analysed += changed
                report.unchanged += not changed
        for file in self._user_files(report):
            key = file.relative_to(self.root).as_posix()
            stat = file.stat()
            old = infos.get(key)
            if old and old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns:
                seen.add(key)
                report.unchanged += 1
                continue
            try:
                title, text, kind = read_file(file, max_bytes=self.max_bytes, name=key)
            except LakehouseError as exc:
                report.failures.append(Failure(key, exc.code.id, str(exc)))
                continue
            except OSError as exc:
                report.failures.append(Failure(key, "OSError", type(exc).__name__))
                continue
            seen.add(key)
            info: dict[str, Any] = {
                "folder": key.rpartition("/")[0],
                "kind": kind,
                "section": "user",
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
            changed = self.index.upsert(key, text, title=title, info=info)
            report.analysed += changed
            report.unchanged += not changed
        report.removed = self.index.remove(k for k in infos if k not in seen)
        return report

    def _user_files(self, report: SyncReport) -> list[Path]:
        """Document files of the user tree (hidden and ``_`` names skipped; links and
        a top-level ``project`` folder reported)."""
        if not self.root.is_dir():
            return []
        files = []
        for file in sorted(self.root.rglob("*")):
            rel = file.relative_to(self.root)
            if any(p.startswith((".", "_")) for p in rel.parts):
                continue
            if file.is_symlink():
                exc = error(ErrorCode.KB_PATH_INVALID, reason="a symbolic link is not followed")
                report.failures.append(Failure(rel.as_posix(), exc.code.id, str(exc)))
                continue
            if not file.is_file():
                continue
            if rel.parts[0] == PROJECT:
                exc = error(ErrorCode.KB_PATH_INVALID, reason="'project' is reserved")
                report.failures.append(Failure(rel.as_posix(), exc.code.id, str(exc)))
                continue
            files.append(file)
        return files

    def add(self, file: Path, folder: str) -> tuple[str, SyncReport]:
        """Copy a Markdown, text or PDF file into a user folder (created if missing) and
        index it; returns its tree path and the sync report. Refuses (its code) a bad
        folder, an unreadable document or one over the size limit; nothing is copied then."""
        parts = user_folder(folder)
        if not file.is_file():
            raise error(ErrorCode.KB_NOT_FOUND, name="file")
        name = file.name
        if name.startswith((".", "_")) or file.suffix.lower() not in SUFFIXES:
            read_file(file, max_bytes=self.max_bytes)  # the type's code
            raise error(ErrorCode.KB_PATH_INVALID, reason="hidden or '_' file name")
        read_file(file, max_bytes=self.max_bytes, name=name)  # refuse before copying
        target_dir = self.root.joinpath(*parts)
        target = target_dir / name
        if not target.resolve().is_relative_to(self.root.resolve()):
            raise error(ErrorCode.KB_PATH_INVALID, reason="outside the knowledge base")
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        return "/".join((*parts, name)), self.sync()

    # -- reading -----------------------------------------------------------------------

    @staticmethod
    def parts(path: str) -> tuple[str, ...]:
        """Plain names of a relative ``a/b/c`` path; ``LH-KNB-001`` for anything else."""
        if not path or path != path.strip() or "\\" in path or "\0" in path:
            raise error(ErrorCode.KB_PATH_INVALID, reason="empty, padded or with a backslash")
        if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
            raise error(ErrorCode.KB_PATH_INVALID, reason="absolute")
        parts = tuple(path.strip("/").split("/"))
        if any(p in ("", ".", "..") for p in parts):
            raise error(ErrorCode.KB_PATH_INVALID, reason="'.', '..' or an empty name")
        if any(p.startswith((".", "_")) for p in parts):
            raise error(ErrorCode.KB_PATH_INVALID, reason="hidden or '_' name")
        return parts

    def can_read(self, who: Reader, path: str) -> bool:
        return self.access.can_read(who, path.rpartition("/")[0])

    def search(
        self, who: Reader, text: str, *, limit: int = 10, offset: int = 0
    ) -> tuple[int, list[KbHit]]:
        """(total, page) of the documents ``who`` may read matching ``text``; documents
        in folders they may not read are neither returned nor counted."""
        self.refresh()
        if not text.strip() or len(text) > MAX_QUERY_CHARS:
            reason = "empty" if not text.strip() else f"over {MAX_QUERY_CHARS} characters"
            raise error(ErrorCode.KB_QUERY_INVALID, reason=reason)
        query = parse_query(text, self.index.analyzer)
        access = self.access
        result = self.index.search(
            query,
            allow=lambda key, info: access.can_read(who, str(info.get("folder", ""))),
            limit=limit,
            offset=offset,
        )
        hits = [
            KbHit(h.key, h.title, h.score, h.snippet, str(h.info.get("section", "")))
            for h in result.hits
        ]
        return result.total, hits

    def read(self, who: Reader, path: str) -> KbDocument:
        """A document ``who`` may read; ``LH-KNB-001`` for a bad path, ``LH-KNB-002`` when
        it does not exist or may not be read (the two look the same)."""
        self.refresh()
        key = "/".join(tree_path(path))
        doc = self.index.document(key)
        if doc is None or not self.access.can_read(who, str(doc.info.get("folder", ""))):
            raise error(ErrorCode.KB_NOT_FOUND, name="document")
        return KbDocument(key, doc.title, str(doc.info.get("kind", "")), doc.text)

    def tree(self, who: Reader) -> dict[str, Any]:
        """Nested ``{name, path, folders, documents}`` of what ``who`` may read; folders
        above a readable one appear by name only (no documents)."""
        self.refresh()
        infos = self.index.infos()
        docs = self.index.titles()
        folders = {str(i.get("folder", "")) for i in infos.values()}
        if self.root.is_dir():
            folders |= {
                p.relative_to(self.root).as_posix()
                for p in self.root.rglob("*")
                if p.is_dir() and not p.is_symlink()
                and not any(s.startswith((".", "_")) for s in p.relative_to(self.root).parts)
            }  # fmt: skip
        readable = {f for f in folders if f and self.access.can_read(who, f)}
        shown = {
            "/".join(PurePosixPath(f).parts[:i])
            for f in readable
            for i in range(1, len(PurePosixPath(f).parts) + 1)
        }
        top: dict[str, Any] = {"name": "", "path": "", "folders": [], "documents": []}
        nodes: dict[str, dict[str, Any]] = {"": top}
        for folder in sorted(shown):
            parent, _, name = folder.rpartition("/")
            node = {"name": name, "path": folder, "folders": [], "documents": []}
            nodes[folder] = node
            nodes[parent]["folders"].append(node)
        for key in sorted(infos):
            folder = str(infos[key].get("folder", ""))
            if folder in readable:
                nodes[folder]["documents"].append(
                    {"path": key, "title": docs.get(key, key), "kind": infos[key].get("kind")}
                )
        return top


def tree_path(path: str) -> tuple[str, ...]:
    """A document path to read (any section)."""
    return KnowledgeBase.parts(path)


def user_folder(folder: str) -> tuple[str, ...]:
    """A folder users may add to: not in the read-only ``project`` section."""
    parts = KnowledgeBase.parts(folder)
    if parts[0] == PROJECT:
        raise error(ErrorCode.KB_PATH_INVALID, reason="'project' is the read-only section")
    return parts
