"""A persistent full-text index: documents, their postings and BM25 search, in SQLite.

Documents change rarely, so a restart must not re-segment everything. :class:`SearchIndex`
keeps each document's key, content digest, title, text, length and free-form ``info``
(JSON) in one SQLite file, and its postings (term, document, term frequency).
:meth:`SearchIndex.upsert` analyses a document only when its digest changed; the postings
of every document are rebuilt from the stored texts when the analysis changes
(:func:`lakehouse.search.analyzer.signature`: version or added domain words).

:meth:`SearchIndex.search` ranks with BM25 over the documents ``allow`` admits only (the
collection statistics too: documents a user may not read are never returned, counted or
felt in the scores), requires every quoted phrase, and returns highlighted snippets.
Pure Python and the standard library's sqlite3; a connection per call (thread-safe).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.search.analyzer import Analyzer, normalize, signature
from lakehouse.search.bm25 import BM25
from lakehouse.search.query import Query, parse_query
from lakehouse.search.snippet import Snippet, match_spans, snippet

#: Documents reranked by whole Chinese query words, and the boost of having them all.
RERANK, RUN_BOOST = 100, 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, digest TEXT NOT NULL,
  length INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS postings (
  term TEXT NOT NULL, doc INTEGER NOT NULL, tf INTEGER NOT NULL, PRIMARY KEY (term, doc)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_doc ON postings (doc);
"""


@dataclass(frozen=True)
class StoredDocument:
    """A document as indexed."""

    key: str
    title: str
    text: str
    digest: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result: the document's key, title, BM25 score, snippet and ``info``."""

    key: str
    title: str
    score: float
    snippet: Snippet
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """``total`` matching documents the caller may read; ``hits``: the requested page."""

    total: int
    hits: tuple[Hit, ...]


def digest_of(*parts: str | bytes) -> str:
    """SHA-256 of the parts (text as UTF-8), as hex."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


class SearchIndex:
    """Documents and postings in one SQLite file (created with its folder if missing)."""

    def __init__(
        self,
        path: Path,
        analyzer: Analyzer | None = None,
        *,
        bm25: BM25 | None = None,
        title_weight: int = 2,
    ) -> None:
        self.path = path
        self.analyzer = analyzer or Analyzer()
        self.bm25 = bm25 or BM25()
        self.title_weight = title_weight
        #: Documents analysed since this object was made (tests, reports).
        self.analysed = 0
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)
        self._check_signature()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        batch: sqlite3.Connection | None = getattr(self._local, "batch", None)
        if batch is not None:  # inside batch(): one transaction, committed at its end
            yield batch
            return
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a rebuildable index: no fsync per commit
            with db:
                yield db
        finally:
            db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run this thread's updates in one transaction (a sync of many documents)."""
        with self._db() as db:
            self._local.batch = db
            try:
                yield
            finally:
                self._local.batch = None

    def _check_signature(self) -> None:
        """Rebuild every posting from the stored texts when the analysis changed."""
        current = signature()
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'signature'").fetchone()
            if row is not None and row[0] == current:
                return
            docs = db.execute("SELECT id, title, text FROM docs").fetchall()
            db.execute("DELETE FROM postings")
            for doc_id, title, text in docs:
                self._write_postings(db, doc_id, title, text)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('signature', ?)", (current,))

    def _write_postings(self, db: sqlite3.Connection, doc_id: int, title: str, text: str) -> int:
        counts: Counter[str] = Counter(self.analyzer.terms(text))
        for term in self.analyzer.terms(title):
            counts[term] += self.title_weight
        db.executemany(
            "INSERT INTO postings (term, doc, tf) VALUES (?, ?, ?)",
            ((term, doc_id, tf) for term, tf in counts.items()),
        )
        db.execute("UPDATE docs SET length = ? WHERE id = ?", (sum(counts.values()), doc_id))
        self.analysed += 1
        return sum(counts.values())

    # -- documents ---------------------------------------------------------------------

    def digests(self) -> dict[str, str]:
        """Key → content digest of every stored document."""
        with self._db() as db:
            return dict(db.execute("SELECT key, digest FROM docs").fetchall())

    def titles(self) -> dict[str, str]:
        """Key → title of every stored document."""
        with self._db() as db:
            return dict(db.execute("SELECT key, title FROM docs").fetchall())

    def infos(self) -> dict[str, dict[str, Any]]:
        """Key → ``info`` of every stored document."""
        with self._db() as db:
            return {k: json.loads(i) for k, i in db.execute("SELECT key, info FROM docs")}

    def upsert(
        self,
        key: str,
        text: str,
        *,
        title: str = "",
        digest: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store and analyse a document unless its digest (default: of title and text) is
        unchanged; ``info`` is updated either way. True when it was (re-)analysed."""
        digest = digest or digest_of(title, text)
        blob = json.dumps(dict(info or {}), sort_keys=True, ensure_ascii=False)
        with self._db() as db:
            row = db.execute("SELECT id, digest FROM docs WHERE key = ?", (key,)).fetchone()
            if row is not None and row[1] == digest:
                db.execute("UPDATE docs SET info = ? WHERE id = ?", (blob, row[0]))
                return False
            if row is not None:
                db.execute("DELETE FROM postings WHERE doc = ?", (row[0],))
                db.execute(
                    "UPDATE docs SET digest = ?, title = ?, text = ?, info = ? WHERE id = ?",
                    (digest, title, text, blob, row[0]),
                )
                doc_id = int(row[0])
            else:
                cur = db.execute(
                    "INSERT INTO docs (key, digest, length, title, text, info) "
                    "VALUES (?, ?, 0, ?, ?, ?)",
                    (key, digest, title, text, blob),
                )
                doc_id = int(cur.lastrowid or 0)
            self._write_postings(db, doc_id, title, text)
            return True

    def remove(self, keys: Iterable[str]) -> int:
        """Drop documents (and their postings); returns how many existed."""
        removed = 0
        with self._db() as db:
            for key in keys:
                row = db.execute("SELECT id FROM docs WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    db.execute("DELETE FROM postings WHERE doc = ?", (row[0],))
                    db.execute("DELETE FROM docs WHERE id = ?", (row[0],))
                    removed += 1
        return removed

    def document(self, key: str) -> StoredDocument | None:
        """A stored document, or None."""
        with self._db() as db:
            row = db.execute(
                "SELECT key, title, text, digest, info FROM docs WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return StoredDocument(row[0], row[1], row[2], row[3], json.loads(row[4]))

    # -- search ------------------------------------------------------------------------

    def search(
        self,
        query: Query | str,
        *,
        allow: Callable[[str, dict[str, Any]], bool] | None = None,
        limit: int = 10,
        offset: int = 0,
        snippet_width: int = 200,
    ) -> SearchResult:
        """Documents matching ``query`` that ``allow(key, info)`` admits, best first."""
        if isinstance(query, str):
            query = parse_query(query, self.analyzer)
        if query.empty:
            return SearchResult(0, ())
        with self._db() as db:
            rows = db.execute("SELECT id, key, length, info FROM docs").fetchall()
            visible = {
                doc_id
                for doc_id, key, _, blob in rows
                if allow is None or allow(key, json.loads(blob))
            }
            lengths = {doc_id: length for doc_id, _, length, _ in rows if doc_id in visible}
            postings: dict[str, dict[int, float]] = {}
            terms = list(query.terms)
            for i in range(0, len(terms), 500):
                chunk = terms[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for term, doc, tf in db.execute(
                    f"SELECT term, doc, tf FROM postings WHERE term IN ({marks})",  # noqa: S608
                    chunk,
                ):
                    postings.setdefault(term, {})[doc] = tf
        ranked = self.bm25.rank(terms, postings, lengths)
        if query.phrases:
            ranked = [(d, s) for d, s in ranked if self._has_phrases(d, query, postings)]
        if query.runs:
            ranked = self._boost_runs(ranked, query)
        hits = tuple(
            self._hit(doc_id, score, query, snippet_width)
            for doc_id, score in ranked[offset : offset + limit]
        )
        return SearchResult(len(ranked), hits)

    def _has_phrases(
        self, doc_id: int, query: Query, postings: dict[str, dict[int, float]]
    ) -> bool:
        for phrase in query.phrases:
            if not all(doc_id in postings.get(t, {}) for t in phrase.terms):
                return False
        title, text = self._texts(doc_id)
        norm, norm_title = normalize(text), normalize(title)
        return all(p.find(norm) or p.find(norm_title) for p in query.phrases)

    def _boost_runs(self, ranked: list[tuple[int, float]], query: Query) -> list[tuple[int, float]]:
        """Rerank the top :data:`RERANK` documents: each unquoted Chinese word of the query
        found whole (not only its sub-words) multiplies the score by 1 + :data:`RUN_BOOST`
        / number of such words."""
        top, rest = ranked[:RERANK], ranked[RERANK:]
        boosted = []
        for doc_id, score in top:
            title, text = self._texts(doc_id)
            # Runs are Han characters only, which NFKC and casefold leave alone (bar the
            # rare compatibility ideographs): a plain substring test on the stored text.
            found = sum(1 for run in query.runs if run in title or run in text)
            boosted.append((doc_id, score * (1 + RUN_BOOST * found / len(query.runs))))
        boosted.sort(key=lambda kv: (-kv[1], kv[0]))
        return boosted + rest

    def _texts(self, doc_id: int) -> tuple[str, str]:
        with self._db() as db:
            title, text = db.execute(
                "SELECT title, text FROM docs WHERE id = ?", (doc_id,)
            ).fetchone()
        return str(title), str(text)

    def _hit(self, doc_id: int, score: float, query: Query, width: int) -> Hit:
        with self._db() as db:
            key, title, text, blob = db.execute(
                "SELECT key, title, text, info FROM docs WHERE id = ?", (doc_id,)
            ).fetchone()
        spans = match_spans(text, query, self.analyzer)
        return Hit(key, title, round(score, 6), snippet(text, spans, width=width), json.loads(blob))
