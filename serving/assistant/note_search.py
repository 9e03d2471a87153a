"""Note search for the assistant: BM25, or hybrid BM25 + dense, over one patient's notes.

The ``notes`` tool (:meth:`serving.assistant.tools.DataTools.notes`) reads a patient's
newest notes through the access service (guarded and audited, capped) and ranks them here
with :mod:`lakehouse.search`: the bilingual analyzer (jieba words and Han bigrams, offsets
into the original text), BM25 with the collection statistics of the notes the user may read
(so the scores reveal nothing of other notes), quoted phrases that must occur as written,
and the boost of whole unquoted Chinese words. Each hit carries the window of the note that
holds the best matches (``[start, end)`` in the note's text, what the citation
``table@version:key:start-end`` names) and the match spans inside it.

**Hybrid** (``mode="hybrid"``): the same notes are also ranked by the cosine of their dense
vectors with the query's and the two rankings are fused by reciprocal rank
(:mod:`lakehouse.search.fusion`), so a note that shares no word with the query but is about
the same thing can be found. The vectors come from the configured model
(``serve.embedding_model_dir``, :class:`~lakehouse.search.embedding.TransformerEmbedder`) or,
by default, from an LSA model fit per search on the notes being searched: only notes the
user may read are ranked, and only they shape the model. Quoted phrases are required of
dense hits too. :class:`NoteRanker` carries the ``serve.*`` choice (:meth:`from_settings`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lakehouse.search import BM25, Analyzer, match_spans, normalize, parse_query, snippet
from lakehouse.search.embedding import (
    LSA_DIMS,
    Embedder,
    LsaEmbedder,
    TransformerEmbedder,
    digest_texts,
)
from lakehouse.search.fusion import DENSE_DEPTH, MIN_SIMILARITY, RRF_K, dense_rank, rrf
from lakehouse.search.query import Query
from lakehouse.settings import Settings

Mode = Literal["bm25", "hybrid"]

Span = tuple[int, int]
#: Each whole unquoted Chinese word of the query found in a note multiplies its score by
#: 1 + RUN_BOOST / number of such words (as the knowledge base's index does).
RUN_BOOST = 0.5
#: Characters of a hit's window (the cited span).
WINDOW = 160


@dataclass(frozen=True)
class NoteHit:
    """One note that matched: its index in the notes searched, score, cited window and the
    match spans inside it (offsets into the note's text)."""

    index: int
    score: float
    start: int
    end: int
    spans: tuple[Span, ...]
    text: str  # the window's plain text, ``note[start:end]``


_ANALYZER: Analyzer | None = None


def analyzer() -> Analyzer:
    """The shared analyzer (jieba loads once per process)."""
    global _ANALYZER
    if _ANALYZER is None:
        _ANALYZER = Analyzer()
    return _ANALYZER


def parse(query: str) -> Query:
    return parse_query(query, analyzer())


def rank_notes(
    texts: Sequence[str | None],
    query: str,
    *,
    limit: int = 5,
    width: int = WINDOW,
    mode: Mode = "bm25",
    embedder: Embedder | None = None,
    rrf_k: int = RRF_K,
    lsa_dims: int = LSA_DIMS,
) -> list[NoteHit]:
    """The notes of ``texts`` that match ``query``, best first (ties: the earlier note,
    i.e. the newer one when ``texts`` come newest first); at most ``limit``. An empty query
    (no terms) returns the first ``limit`` notes with their opening window. ``mode="hybrid"``
    fuses BM25 with the dense ranking of ``embedder`` (default: LSA fit on ``texts``)."""
    an, q = analyzer(), parse(query)
    if q.empty:
        return [
            _hit(i, 0.0, t, (), width) for i, t in enumerate(texts) if t is not None and t.strip()
        ][:limit]
    postings: dict[str, dict[int, float]] = {}
    lengths: dict[int, int] = {}
    analysed: dict[int, list[str]] = {}
    for i, text in enumerate(texts):
        if not text:
            continue
        terms = analysed[i] = an.terms(text)
        lengths[i] = len(terms)
        for term, tf in Counter(terms).items():
            postings.setdefault(term, {})[i] = float(tf)
    ranked = BM25().rank(q.terms, postings, lengths)
    if q.phrases:
        ranked = [
            (i, s) for i, s in ranked if all(p.find(normalize(texts[i] or "")) for p in q.phrases)
        ]
    if q.runs:
        ranked = [
            (i, s * (1 + RUN_BOOST * sum(r in (texts[i] or "") for r in q.runs) / len(q.runs)))
            for i, s in ranked
        ]
        ranked.sort(key=lambda kv: (-kv[1], kv[0]))
    else:
        ranked.sort(key=lambda kv: (-kv[1], kv[0]))
    if mode == "hybrid":
        dense = _dense(texts, analysed, q, embedder or LsaEmbedder(None, an, dims=lsa_dims))
        if q.phrases:
            dense = [
                (i, s)
                for i, s in dense
                if all(p.find(normalize(texts[i] or "")) for p in q.phrases)
            ]
        ranked = rrf(ranked, dense, k=rrf_k)
    out = []
    for i, score in ranked[:limit]:
        text = texts[i] or ""
        out.append(_hit(i, score, text, match_spans(text, q, an), width))
    return out


def _dense(
    texts: Sequence[str | None], analysed: dict[int, list[str]], q: Query, embedder: Embedder
) -> list[tuple[int, float]]:
    """The notes closest to the query's vector (a corpus-trained model is fit on them)."""
    idx = [i for i, t in enumerate(texts) if t and t.strip()]
    if not idx:
        return []
    query = q.text or " ".join(q.terms)
    if isinstance(embedder, LsaEmbedder):  # fit on the notes' terms, analysed once
        docs = [analysed.get(i, []) for i in idx]
        vectors = embedder.fit_transform(docs, corpus=digest_texts(texts[i] or "" for i in idx))
        qvec = embedder.embed([query])[0]
    else:
        texts_ = [texts[i] or "" for i in idx]
        if embedder.trained_on_corpus:
            embedder.fit(texts_, corpus=digest_texts(texts_))
        both = embedder.embed([*texts_, query])
        vectors, qvec = both[:-1], both[-1]
    if vectors.shape[1] != qvec.shape[0]:
        return []
    return dense_rank(qvec, idx, vectors, depth=DENSE_DEPTH, min_similarity=MIN_SIMILARITY)


@dataclass(frozen=True)
class NoteRanker:
    """The configured note ranking (``serve.note_search`` and the embedding settings):
    :meth:`rank` is :func:`rank_notes` with them."""

    mode: Mode = "bm25"
    embedder: Embedder | None = None
    rrf_k: int = RRF_K
    lsa_dims: int = LSA_DIMS

    @classmethod
    def from_settings(cls, cfg: Settings) -> NoteRanker:
        """``serve.note_search`` (``auto``: hybrid with the model of
        ``serve.embedding_model_dir`` when set, relative to home; else BM25); an explicit
        ``hybrid`` without a model fits LSA on each search's notes."""
        model_dir = cfg.serve.embedding_model_dir
        if model_dir is not None and not model_dir.is_absolute():
            model_dir = cfg.home / model_dir
        mode: Mode = "hybrid" if model_dir is not None else "bm25"
        if cfg.serve.note_search != "auto":
            mode = cfg.serve.note_search
        return cls(
            mode,
            TransformerEmbedder(model_dir) if model_dir is not None else None,
            cfg.serve.rrf_k,
            cfg.serve.lsa_dims,
        )

    def rank(
        self, texts: Sequence[str | None], query: str, *, limit: int = 5, width: int = WINDOW
    ) -> list[NoteHit]:
        return rank_notes(
            texts,
            query,
            limit=limit,
            width=width,
            mode=self.mode,
            embedder=self.embedder,
            rrf_k=self.rrf_k,
            lsa_dims=self.lsa_dims,
        )


def _hit(index: int, score: float, text: str, spans: Sequence[Span], width: int) -> NoteHit:
    snip = snippet(text, spans, width=width)
    return NoteHit(
        index, round(score, 6), snip.start, snip.end, snip.spans, text[snip.start : snip.end]
    )


__all__ = ["WINDOW", "NoteHit", "NoteRanker", "analyzer", "rank_notes"]
