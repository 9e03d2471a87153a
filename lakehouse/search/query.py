"""Search queries: terms and "quoted phrases", Chinese and English mixed.

``parse_query('糖化血红蛋白 "blood glucose" metformin')`` → a :class:`Query` whose terms
are every analyzed term (ranked by BM25, any may match) and whose phrases must each occur
in a document as written (after normalization; spaces between the phrase's words may be
any run of white space). Straight and curly/CJK quotes (“…”, 「…」, ＂…＂) delimit phrases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lakehouse.search.analyzer import Analyzer, Normalized, normalize

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_QUOTED = re.compile(r'"([^"]*)"|“([^”]*)”|「([^」]*)」|『([^』]*)』')
MAX_QUERY_CHARS = 500


@dataclass(frozen=True)
class Phrase:
    """A quoted phrase: its normalized text and its terms."""

    text: str
    terms: tuple[str, ...]

    def pattern(self) -> re.Pattern[str]:
        """Regex over normalized text: the phrase's words with any white space between."""
        return re.compile(r"\s+".join(re.escape(w) for w in self.text.split()))

    def find(self, norm: Normalized) -> list[tuple[int, int]]:
        """Original spans of the phrase's occurrences in a normalized text."""
        return [
            norm.span(m.start(), m.end())
            for m in self.pattern().finditer(norm.text)
            if m.end() > m.start()
        ]


@dataclass(frozen=True)
class Query:
    """A parsed query: ranked terms (phrase terms included) and required phrases."""

    terms: tuple[str, ...]
    phrases: tuple[Phrase, ...] = ()
    #: Unquoted runs of 3+ Han characters (normalized), whole-word rerank of BM25's top.
    runs: tuple[str, ...] = ()
    #: The query as written (quotes removed): what a dense embedding of the query reads.
    text: str = ""

    @property
    def empty(self) -> bool:
        return not self.terms and not self.phrases


def parse_query(text: str, analyzer: Analyzer) -> Query:
    """Terms and quoted phrases of ``text`` (an unmatched quote is taken as a space)."""
    text = unicodedata_safe(text[:MAX_QUERY_CHARS])
    phrases: list[Phrase] = []
    terms: list[str] = []

    def take(match: re.Match[str]) -> str:
        inner = next(g for g in match.groups() if g is not None)
        norm = normalize(inner).text.strip()
        words = tuple(analyzer.terms(inner))
        if norm and words:
            phrases.append(Phrase(" ".join(norm.split()), words))
        return " "

    rest = _QUOTED.sub(take, text).replace('"', " ")
    for phrase in phrases:
        terms.extend(phrase.terms)
    terms.extend(analyzer.terms(rest))
    runs = [r for r in _HAN_RUN.findall(normalize(rest).text) if len(r) >= 3]
    return Query(
        tuple(dict.fromkeys(terms)),
        tuple(dict.fromkeys(phrases)),
        tuple(dict.fromkeys(runs)),
        " ".join(_QUOTED.sub(_unquote, text).replace('"', " ").split()),
    )


def _unquote(match: re.Match[str]) -> str:
    return " " + next(g for g in match.groups() if g is not None) + " "


def unicodedata_safe(text: str) -> str:
    """Full-width quotes as ASCII quotes, control characters as spaces."""
    text = text.replace("＂", '"')
    return "".join(" " if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0) else c for c in text)
