"""Hybrid note search over one patient's notes (serving.assistant.note_search): LSA fit on
the notes searched only, fused with BM25 by reciprocal rank; spans as for BM25."""

from __future__ import annotations

from pathlib import Path

from lakehouse.settings import Settings
from serving.assistant.note_search import NoteRanker, rank_notes
from tests.unit.search.test_hybrid import NOTES

TEXTS = [*NOTES.values(), None, ""]
DM3 = list(NOTES).index("dm3")


def test_hybrid_finds_the_note_in_other_words_with_its_window() -> None:
    assert DM3 not in [h.index for h in rank_notes(TEXTS, "口渴")]  # BM25 (the default)
    hits = rank_notes(TEXTS, "口渴", mode="hybrid")
    assert [h.index for h in hits] == [0, 1, DM3]
    assert (hits[-1].start, hits[-1].end, hits[-1].spans) == (0, len(TEXTS[DM3] or ""), ())
    assert hits[0].spans  # a BM25 hit keeps its match spans
    assert rank_notes(TEXTS, "口渴", mode="hybrid") == hits  # deterministic
    assert [h.index for h in rank_notes(TEXTS, '"口渴"', mode="hybrid")] == [0, 1]


def test_the_ranker_follows_the_settings(tmp_path: Path) -> None:
    auto = NoteRanker.from_settings(Settings(home=tmp_path))  # type: ignore[call-arg]
    assert (auto.mode, auto.embedder) == ("bm25", None)  # auto: no model, BM25
    cfg = Settings(home=tmp_path, serve={"note_search": "hybrid"})  # type: ignore[arg-type,call-arg]
    ranker = NoteRanker.from_settings(cfg)
    assert (ranker.mode, ranker.embedder, ranker.rrf_k) == ("hybrid", None, 60)
    assert [h.index for h in ranker.rank(TEXTS, "口渴")] == [0, 1, DM3]
    cfg = Settings(home=tmp_path, serve={"note_search": "bm25"})  # type: ignore[arg-type,call-arg]
    bm25 = NoteRanker.from_settings(cfg)
    assert [h.index for h in bm25.rank(TEXTS, "口渴")] == [1, 0]
