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

**Hybrid** (``mode="hybrid"`` with an :class:`~lakehouse.search.embedding.Embedder`): each
document's vector (of title and text) is stored in the ``vectors`` table, keyed by the
document, its digest and the model's name, so a restart recomputes nothing; a corpus-trained
model (LSA, the default) is refit when the corpus signature (analysis signature and the
keys and digests of the documents ``fit_allow`` admits) changes, and then every vector is
recomputed. A search ranks the admitted documents by BM25 and, separately, by the cosine of
their vectors with the query's (:func:`~lakehouse.search.fusion.dense_rank`), and fuses the
two by reciprocal rank (:func:`~lakehouse.search.fusion.rrf`): both rankings are computed
over the documents ``allow`` admits only, and quoted phrases are required of dense hits too.
The LSA model itself is trained on the documents ``fit_allow`` admits (default: all):
index only text every searcher may be told about at that level (docs/adr/0034).
Pure Python, numpy and the standard library's sqlite3; a connection per call (thread-safe).
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
from typing import Any, Literal

import numpy as np

from lakehouse.search.analyzer import Analyzer, normalize, signature
from lakehouse.search.bm25 import BM25
from lakehouse.search.embedding import Embedder, LsaEmbedder
from lakehouse.search.fusion import DENSE_DEPTH, MIN_SIMILARITY, RRF_K, dense_rank, rrf
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
CREATE TABLE IF NOT EXISTS vectors (
  doc INTEGER PRIMARY KEY, digest TEXT NOT NULL, model TEXT NOT NULL, vec BLOB NOT NULL);
"""
Mode = Literal["bm25", "hybrid"]
Allow = Callable[[str, dict[str, Any]], bool]
#: Documents embedded per batch when vectors are (re)computed.
EMBED_BATCH = 256


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
    """One search result: the document's key, title, score (BM25, or the fused score of a
    hybrid search), snippet and ``info``."""

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
        embedder: Embedder | None = None,
        mode: Mode = "bm25",
        fit_allow: Allow | None = None,
        rrf_k: int = RRF_K,
        dense_depth: int = DENSE_DEPTH,
        min_similarity: float = MIN_SIMILARITY,
    ) -> None:
        if mode == "hybrid" and embedder is None:
            raise ValueError("hybrid search needs an embedder")
        self.path = path
        self.analyzer = analyzer or Analyzer()
        self.bm25 = bm25 or BM25()
        self.title_weight = title_weight
        self.embedder = embedder
        self.mode: Mode = mode
        self.fit_allow = fit_allow
        self.rrf_k, self.dense_depth, self.min_similarity = rrf_k, dense_depth, min_similarity
        #: Documents analysed / embedded since this object was made (tests, reports).
        self.analysed = 0
        self.embedded = 0
        self._local = threading.local()
        self._vector_lock = threading.Lock()
        self._vector_cache: tuple[str, int, list[int], np.ndarray[Any, Any]] | None = None
        self._refreshed: tuple[int, str] | None = None
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
            self._bump(db)

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
                cur = db.execute(
                    "UPDATE docs SET info = ? WHERE id = ? AND info != ?", (blob, row[0], blob)
                )
                if cur.rowcount:
                    self._bump(db)
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
            self._bump(db)
            return True

    def remove(self, keys: Iterable[str]) -> int:
        """Drop documents (and their postings); returns how many existed."""
        removed = 0
        with self._db() as db:
            for key in keys:
                row = db.execute("SELECT id FROM docs WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    db.execute("DELETE FROM postings WHERE doc = ?", (row[0],))
                    db.execute("DELETE FROM vectors WHERE doc = ?", (row[0],))
                    db.execute("DELETE FROM docs WHERE id = ?", (row[0],))
                    self._bump(db)
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

    # -- vectors -----------------------------------------------------------------------

    def corpus_signature(self) -> str:
        """The analysis signature and the keys and digests of the documents ``fit_allow``
        admits: a corpus-trained model fit under another signature is refit."""
        h = hashlib.sha256(signature().encode())
        with self._db() as db:
            for key, digest, blob in db.execute("SELECT key, digest, info FROM docs ORDER BY key"):
                if self.fit_allow is None or self.fit_allow(key, json.loads(blob)):
                    h.update(f"{key}\0{digest}\0".encode())
        return h.hexdigest()

    def refresh_vectors(self) -> int:
        """Fit a corpus-trained model when the corpus changed, then embed every document
        whose stored vector is missing or was made from another digest or model; returns
        how many were embedded. Search calls it; a sync may call it to pay the cost early."""
        embedder = self.embedder
        if embedder is None:
            return 0
        with self._vector_lock:
            epoch = self._epoch()
            if self._refreshed == (epoch, embedder.name):
                return 0
            before = self.embedded
            if embedder.trained_on_corpus:
                corpus = self.corpus_signature()
                if embedder.corpus != corpus:
                    with self._db() as db:
                        rows = [
                            (doc_id, digest, _doc_text(title, text))
                            for doc_id, key, digest, title, text, blob in db.execute(
                                "SELECT id, key, digest, title, text, info FROM docs ORDER BY key"
                            )
                            if self.fit_allow is None or self.fit_allow(key, json.loads(blob))
                        ]
                    if isinstance(embedder, LsaEmbedder):  # vectors of the fit, analysed once
                        an = embedder.analyzer
                        vectors = embedder.fit_transform(
                            [an.terms(text) for _, _, text in rows], corpus=corpus
                        )
                        self._store([(d, g) for d, g, _ in rows], vectors, embedder.name)
                    else:
                        embedder.fit([text for _, _, text in rows], corpus=corpus)
            model = embedder.name
            with self._db() as db:
                stale = db.execute(
                    "SELECT d.id, d.digest, d.title, d.text FROM docs d LEFT JOIN vectors v "
                    "ON v.doc = d.id AND v.digest = d.digest AND v.model = ? "
                    "WHERE v.doc IS NULL ORDER BY d.id",
                    (model,),
                ).fetchall()
            for i in range(0, len(stale), EMBED_BATCH):
                chunk = stale[i : i + EMBED_BATCH]
                vectors = embedder.embed([_doc_text(title, text) for _, _, title, text in chunk])
                self._store([(d, g) for d, g, _, _ in chunk], vectors, model)
            self._refreshed = (self._epoch(), model)
            return self.embedded - before

    def _store(
        self, docs: list[tuple[int, str]], vectors: np.ndarray[Any, Any], model: str
    ) -> None:
        """Write the vectors of (document id, digest) pairs under ``model``."""
        with self._db() as db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors (doc, digest, model, vec) VALUES (?, ?, ?, ?)",
                (
                    (doc_id, digest, model, vec.astype("<f4").tobytes())
                    for (doc_id, digest), vec in zip(docs, vectors, strict=True)
                ),
            )
        self.embedded += len(docs)
        self._vector_cache = None

    def _epoch(self) -> int:
        """A counter bumped by every change of a document (text, info or removal)."""
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta VALUES ('epoch', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def _vectors(self) -> tuple[list[int], np.ndarray[Any, Any]]:
        """Document ids and their current vectors (rows), cached until they change."""
        assert self.embedder is not None
        model = self.embedder.name
        epoch = self._epoch()
        with self._db() as db:
            cache = self._vector_cache
            if cache is not None and cache[0] == model and cache[1] == epoch:
                return cache[2], cache[3]
            rows = db.execute(
                "SELECT v.doc, v.vec FROM vectors v JOIN docs d "
                "ON d.id = v.doc AND d.digest = v.digest WHERE v.model = ? ORDER BY v.doc",
                (model,),
            ).fetchall()
        ids = [int(doc) for doc, _ in rows]
        matrix = (
            np.frombuffer(b"".join(vec for _, vec in rows), dtype="<f4").reshape(len(rows), -1)
            if rows
            else np.zeros((0, 1), dtype=np.float32)
        )
        self._vector_cache = (model, epoch, ids, matrix)
        return ids, matrix

    def _dense(self, query: Query, visible: set[int]) -> list[tuple[int, float]]:
        """The visible documents closest to the query's vector, best first."""
        assert self.embedder is not None
        self.refresh_vectors()
        text = query.text or " ".join(query.terms)
        qvec = self.embedder.embed([text])[0]
        ids, matrix = self._vectors()
        rows = [i for i, doc in enumerate(ids) if doc in visible]
        if not rows or matrix.shape[1] != qvec.shape[0]:
            return []
        return dense_rank(
            qvec,
            [ids[i] for i in rows],
            matrix[rows],
            depth=self.dense_depth,
            min_similarity=self.min_similarity,
        )

    # -- search ------------------------------------------------------------------------

    def search(
        self,
        query: Query | str,
        *,
        allow: Callable[[str, dict[str, Any]], bool] | None = None,
        limit: int = 10,
        offset: int = 0,
        snippet_width: int = 200,
        mode: Mode | None = None,
    ) -> SearchResult:
        """Documents matching ``query`` that ``allow(key, info)`` admits, best first
        (``mode``: this search's, default the index's)."""
        mode = mode or self.mode
        if mode == "hybrid" and self.embedder is None:
            raise ValueError("hybrid search needs an embedder")
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
        if mode == "hybrid":
            dense = self._dense(query, visible)
            if query.phrases:
                dense = [(d, s) for d, s in dense if self._has_phrases(d, query, postings)]
            ranked = rrf(ranked, dense, k=self.rrf_k)
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


def _doc_text(title: str, text: str) -> str:
    """What a document's vector is made of."""
    return f"{title}\n{text}" if title else text
