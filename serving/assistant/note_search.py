"""Note search for the assistant: BM25 over one patient's notes, in memory.

The ``notes`` tool (:meth:`serving.assistant.tools.DataTools.notes`) reads a patient's
newest notes through the access service (guarded and audited, capped) and ranks them here
with :mod:`lakehouse.search`: the bilingual analyzer (jieba words and Han bigrams, offsets
into the original text), BM25 with the collection statistics of the notes the user may read
(so the scores reveal nothing of other notes), quoted phrases that must occur as written,
and the boost of whole unquoted Chinese words. Each hit carries the window of the note that
holds the best matches (``[start, end)`` in the note's text, what the citation
``table@version:key:start-end`` names) and the match spans inside it.

Lexical only: dense embeddings (the issue's hybrid search) are not built here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from lakehouse.search import BM25, Analyzer, match_spans, normalize, parse_query, snippet
from lakehouse.search.query import Query

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
    texts: Sequence[str | None], query: str, *, limit: int = 5, width: int = WINDOW
) -> list[NoteHit]:
    """The notes of ``texts`` that match ``query``, best first (ties: the earlier note,
    i.e. the newer one when ``texts`` come newest first); at most ``limit``. An empty query
    (no terms) returns the first ``limit`` notes with their opening window."""
    an, q = analyzer(), parse(query)
    if q.empty:
        return [
            _hit(i, 0.0, t, (), width) for i, t in enumerate(texts) if t is not None and t.strip()
        ][:limit]
    postings: dict[str, dict[int, float]] = {}
    lengths: dict[int, int] = {}
    for i, text in enumerate(texts):
        if not text:
            continue
        terms = an.terms(text)
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
    out = []
    for i, score in ranked[:limit]:
        text = texts[i] or ""
        out.append(_hit(i, score, text, match_spans(text, q, an), width))
    return out


def _hit(index: int, score: float, text: str, spans: Sequence[Span], width: int) -> NoteHit:
    snip = snippet(text, spans, width=width)
    return NoteHit(
        index, round(score, 6), snip.start, snip.end, snip.spans, text[snip.start : snip.end]
    )


__all__ = ["WINDOW", "NoteHit", "analyzer", "rank_notes"]
