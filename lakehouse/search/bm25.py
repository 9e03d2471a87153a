"""Okapi BM25 ranking (Lucene's idf), over any postings the caller holds.

``BM25(k1, b).rank(terms, postings, lengths)`` scores every document of ``lengths`` that
holds a query term. The collection statistics (document count, average length, document
frequencies) come from ``lengths`` and ``postings`` as given: pass only the documents the
user may read and the scores reveal nothing about the others.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

D = TypeVar("D", bound=Hashable)


@dataclass(frozen=True)
class BM25:
    """BM25 parameters: ``k1`` (term-frequency saturation), ``b`` (length normalization)."""

    k1: float = 1.2
    b: float = 0.75

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError("BM25 needs k1 >= 0 and 0 <= b <= 1")

    @staticmethod
    def idf(n_docs: int, df: int) -> float:
        """ln(1 + (N - df + 0.5) / (df + 0.5)): never negative."""
        return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))

    def term_score(self, tf: float, doc_len: float, avg_len: float, idf: float) -> float:
        """One term's contribution to one document's score."""
        norm = 1 - self.b + self.b * (doc_len / avg_len if avg_len else 1.0)
        return idf * tf * (self.k1 + 1) / (tf + self.k1 * norm)

    def rank(
        self,
        terms: Iterable[str],
        postings: Mapping[str, Mapping[D, float]],
        lengths: Mapping[D, int],
    ) -> list[tuple[D, float]]:
        """(document, score) of the documents of ``lengths`` holding a term, best first
        (ties by document, for a stable order); postings outside ``lengths`` are ignored."""
        n_docs = len(lengths)
        if not n_docs:
            return []
        avg_len = sum(lengths.values()) / n_docs
        scores: dict[D, float] = {}
        for term in dict.fromkeys(terms):
            docs = {d: tf for d, tf in postings.get(term, {}).items() if d in lengths}
            if not docs:
                continue
            idf = self.idf(n_docs, len(docs))
            for doc, tf in docs.items():
                scores[doc] = scores.get(doc, 0.0) + self.term_score(tf, lengths[doc], avg_len, idf)
        return sorted(scores.items(), key=lambda kv: (-kv[1], str(kv[0])))
