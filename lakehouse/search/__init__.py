"""Bilingual (Chinese/English) full-text search: analysis with offsets, BM25, snippets,
and a persistent SQLite index. Used by the knowledge base (:mod:`lakehouse.knowledge`) and
meant for the assistant's note search. Reference: docs/knowledge-base.md."""

from lakehouse.search.analyzer import Analyzer, Normalized, Token, add_words, normalize, stem
from lakehouse.search.bm25 import BM25
from lakehouse.search.index import Hit, SearchIndex, SearchResult, StoredDocument, digest_of
from lakehouse.search.query import Phrase, Query, parse_query
from lakehouse.search.snippet import Snippet, match_spans, merge, snippet

__all__ = [
    "BM25",
    "Analyzer",
    "Hit",
    "Normalized",
    "Phrase",
    "Query",
    "SearchIndex",
    "SearchResult",
    "Snippet",
    "StoredDocument",
    "Token",
    "add_words",
    "digest_of",
    "match_spans",
    "merge",
    "normalize",
    "parse_query",
    "snippet",
    "stem",
]
