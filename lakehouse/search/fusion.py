"""Hybrid ranking: the cosine ranking of dense vectors and reciprocal rank fusion.

:func:`dense_rank` orders candidate documents by the cosine of their (unit) vectors with the
query's, keeping the best ``depth`` above ``min_similarity``. :func:`rrf` fuses rankings
(Cormack et al., 2009): a document's score is the sum over the rankings that hold it of
``1 / (k + rank)`` (rank from 1). Only ranks count, so BM25's unbounded scores and cosines
need no calibration. Ties break on the document (integers in order, else by text), so the
order is deterministic.

Both see only what the caller passes: give them the documents the user may read and the
result says nothing about the others.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

D = TypeVar("D", bound=Hashable)

#: The constant of reciprocal rank fusion (the paper's 60).
RRF_K = 60
#: Documents the dense ranking contributes, and the least cosine they need.
DENSE_DEPTH, MIN_SIMILARITY = 50, 0.2


def dense_rank(
    query: NDArray[np.float32],
    docs: Sequence[D],
    vectors: NDArray[np.float32],
    *,
    depth: int = DENSE_DEPTH,
    min_similarity: float = MIN_SIMILARITY,
) -> list[tuple[D, float]]:
    """(document, cosine) of the ``depth`` documents most similar to ``query`` (rows of
    ``vectors`` in the order of ``docs``), best first; ties by document."""
    if not len(docs) or not query.any():
        return []
    scores = vectors @ query
    ranked = [(d, float(s)) for d, s in zip(docs, scores, strict=True) if s >= min_similarity]
    ranked.sort(key=lambda kv: (-round(kv[1], 6), _tie(kv[0])))
    return ranked[:depth]


def rrf(*rankings: Sequence[tuple[D, float]], k: int = RRF_K) -> list[tuple[D, float]]:
    """Reciprocal rank fusion of rankings (each best first); (document, fused score) best
    first, ties by document."""
    if k < 0:
        raise ValueError("rrf needs k >= 0")
    scores: dict[D, float] = {}
    for ranking in rankings:
        for rank, (doc, _) in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-round(kv[1], 12), _tie(kv[0])))


def _tie(doc: Hashable) -> tuple[int, int, str]:
    """Integers in numeric order (an index: the earlier first), anything else by text."""
    return (0, doc, "") if isinstance(doc, int) else (1, 0, str(doc))


__all__ = ["DENSE_DEPTH", "MIN_SIMILARITY", "RRF_K", "dense_rank", "rrf"]
