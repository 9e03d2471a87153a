"""Matches and highlighted snippets over the original text.

:func:`match_spans` finds where a :class:`Query` matches a text (its terms' tokens and its
phrases' occurrences, merged where they touch: 糖化 + 血红蛋白 → one span 糖化血红蛋白), as
``[start, end)`` spans of the text as given. :func:`snippet` picks the window of about
``width`` characters holding the most distinct matches and renders it as HTML: every
character of the text escaped, the matches wrapped in ``<mark>…</mark>``, an ellipsis
where the window cuts the text.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from lakehouse.search.analyzer import Analyzer, normalize
from lakehouse.search.query import Query

Span = tuple[int, int]
MAX_SPANS = 2000
#: Texts longer than CHUNK characters are matched chunk by chunk (OVERLAP: longest phrase).
CHUNK, OVERLAP = 20_000, 200


@dataclass(frozen=True)
class Snippet:
    """A highlighted window of a text: ``html`` (safe to insert as HTML), the window's
    ``[start, end)`` in the text and the match ``spans`` inside it (offsets into the whole
    text, not the window)."""

    html: str
    start: int
    end: int
    spans: tuple[Span, ...]


def match_spans(text: str, query: Query, analyzer: Analyzer) -> list[Span]:
    """Merged, sorted spans of ``text`` where the query's terms or phrases occur.

    A long text is analysed in overlapping chunks of :data:`CHUNK` characters, skipping
    those that cannot hold a match (none of the query's probes occurs in the chunk's
    NFKC-casefolded text: a term's stem less its last letter is a prefix of every word
    it came from) and stopping after :data:`MAX_SPANS` matches."""
    if len(text) <= CHUNK:
        return merge(_matches(text, query, analyzer))[:MAX_SPANS]
    probes = _probes(query)
    raw: list[Span] = []
    for start in range(0, len(text), CHUNK):
        piece = text[start : start + CHUNK + OVERLAP]
        folded = unicodedata.normalize("NFKC", piece).casefold()
        if not any(p in folded for p in probes):
            continue
        raw = merge([*raw, *((s + start, e + start) for s, e in _matches(piece, query, analyzer))])
        if len(raw) > MAX_SPANS:
            break
    return raw[:MAX_SPANS]


def _matches(text: str, query: Query, analyzer: Analyzer) -> list[Span]:
    wanted = set(query.terms)
    norm = normalize(text)
    raw = [(t.start, t.end) for t in analyzer.normalized_tokens(norm) if t.term in wanted]
    for phrase in query.phrases:
        raw.extend(phrase.find(norm))
    return raw


def _probes(query: Query) -> set[str]:
    """Strings one of which a chunk's folded text holds if the query can match in it."""
    probes = {t if len(t) < 3 or not t.isascii() else t[:-1] for t in query.terms}
    probes.update(w for p in query.phrases for w in p.text.split())
    return probes or {""}


def merge(spans: Sequence[Span]) -> list[Span]:
    """Overlapping or touching spans joined into one."""
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def snippet(text: str, spans: Sequence[Span], *, width: int = 200) -> Snippet:
    """The best window of ``text`` around ``spans`` (merged, sorted), highlighted."""
    if not spans:
        end = min(len(text), width)
        return Snippet(_ellipsis(html.escape(text[:end]), 0, end, len(text)), 0, end, ())
    start, end = _window(text, spans, width)
    inside = [s for s in spans if s[0] >= start and s[1] <= end]
    parts: list[str] = []
    pos = start
    for s, e in inside:
        parts.append(html.escape(text[pos:s]))
        parts.append(f"<mark>{html.escape(text[s:e])}</mark>")
        pos = e
    parts.append(html.escape(text[pos:end]))
    return Snippet(_ellipsis("".join(parts), start, end, len(text)), start, end, tuple(inside))


def _window(text: str, spans: Sequence[Span], width: int) -> Span:
    """The window of ``width`` characters (at least the first span) holding the most
    distinct matched strings, then the most matches; matches start about a fifth in."""
    best: tuple[int, int, int] = (-1, -1, 0)
    lead = width // 5
    for i, (s0, _) in enumerate(spans):
        ws = max(0, s0 - lead)
        we = max(ws + width, spans[i][1])
        inside = [sp for sp in spans[i:] if sp[1] <= we]
        distinct = len({text[s:e].casefold() for s, e in inside})
        score = (distinct, len(inside), -ws)
        if score > best:
            best = score
    ws = -best[2]
    we = min(len(text), max(ws + width, _first_end(spans, ws)))
    if we - ws < width:  # near the end: widen to the left
        ws = max(0, we - width)
    return _word_edges(text, ws, we, spans)


def _first_end(spans: Sequence[Span], ws: int) -> int:
    return next((e for s, e in spans if s >= ws), ws)


def _word_edges(text: str, ws: int, we: int, spans: Sequence[Span]) -> Span:
    """Move the window's edges to white space nearby (10 characters at most), never into
    a match."""
    if ws > 0:
        cut = text.rfind(" ", max(0, ws - 10), ws + 1)
        if cut != -1 and not any(s < cut + 1 < e for s, e in spans):
            ws = cut + 1
    if we < len(text):
        cut = text.find(" ", we - 1, we + 10)
        if cut != -1 and not any(s < cut < e for s, e in spans):
            we = cut
    return ws, we


def _ellipsis(body: str, start: int, end: int, length: int) -> str:
    return ("…" if start > 0 else "") + body + ("…" if end < length else "")
