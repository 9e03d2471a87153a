"""Hybrid search: BM25 fused with dense (LSA or a local transformers model) by reciprocal
rank; only what ``allow`` admits is ranked; vectors persisted and reused; deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lakehouse.search import SearchIndex
from lakehouse.search.embedding import LsaEmbedder, TransformerEmbedder, embedder_for
from lakehouse.search.fusion import dense_rank, rrf

# 口渴 (thirst) co-occurs with 多饮/多尿/糖尿病 in the corpus; "dm3" is about the same thing
# but never says 口渴, so BM25 alone cannot find it.
NOTES = {
    "dm1": "患者口渴多饮多尿，血糖升高，诊断糖尿病。",
    "dm2": "口渴多饮多尿三月，糖尿病控制不佳。",
    "dm3": "多饮多尿，糖尿病，予二甲双胍。",
    "dm4": "糖尿病随访，二甲双胍剂量调整。",
    "mi1": "胸痛两小时，心电图ST段抬高，急性心肌梗死。",
    "mi2": "胸痛伴出汗，心肌梗死，行介入治疗。",
    "cap1": "咳嗽咳痰发热，肺炎，予抗生素。",
    "cap2": "发热咳嗽，胸片示肺炎。",
}
#: A note of another ward, about thirst too: never returned nor felt by ward A's users.
SECRET = ("dm9", "口渴多饮，糖尿病酮症酸中毒，胰岛素泵。")


def _ward(key: str, info: dict[str, object]) -> bool:
    return info.get("ward") == "A"


def _index(path: Path, notes: dict[str, str], *, secret: bool = False) -> SearchIndex:
    ix = SearchIndex(
        path / "ix.db",
        embedder=embedder_for(None, path / "ix.db"),
        mode="hybrid",
        fit_allow=_ward,
    )
    with ix.batch():
        for key, text in notes.items():
            ix.upsert(key, text, info={"ward": "A"})
        if secret:
            ix.upsert(*SECRET, info={"ward": "B"})
    return ix


def test_hybrid_finds_the_note_in_other_words_bm25_does_not(tmp_path: Path) -> None:
    ix = _index(tmp_path, NOTES)
    lexical = ix.search("口渴", mode="bm25")
    assert {h.key for h in lexical.hits} == {"dm1", "dm2"}
    hybrid = ix.search("口渴")
    keys = [h.key for h in hybrid.hits]
    assert set(keys) == {"dm1", "dm2", "dm3"}  # nothing about chest pain or pneumonia
    assert keys[-1] == "dm3"  # in one ranking only: after the notes in both
    dm3 = hybrid.hits[-1]
    assert dm3.snippet.spans == ()  # no word matched: the note's opening window
    assert (dm3.snippet.start, dm3.snippet.end) == (0, len(NOTES["dm3"]))
    # a quoted phrase is required of dense hits too
    assert {h.key for h in ix.search('"口渴"').hits} == {"dm1", "dm2"}
    assert ix.search("口渴 多尿").total >= 3


def test_documents_allow_refuses_are_neither_returned_nor_felt(tmp_path: Path) -> None:
    with_secret = _index(tmp_path / "a", NOTES, secret=True)
    without = _index(tmp_path / "b", NOTES)
    for query in ("口渴", "糖尿病 胰岛素", "酮症酸中毒"):
        seen = with_secret.search(query, allow=_ward)
        assert "dm9" not in {h.key for h in seen.hits}
        clean = without.search(query)
        assert seen.total == clean.total
        assert [(h.key, h.score) for h in seen.hits] == [(h.key, h.score) for h in clean.hits]
    assert "dm9" in {h.key for h in with_secret.search("口渴").hits}  # allow=None: all


def test_vectors_persist_and_are_reused_until_the_corpus_changes(tmp_path: Path) -> None:
    ix = _index(tmp_path, NOTES)
    first = ix.search("口渴")
    assert ix.embedded == len(NOTES)
    assert (tmp_path / "ix.db.lsa.npz").is_file()
    ix.search("胸痛")
    assert ix.embedded == len(NOTES)  # nothing recomputed between searches

    again = SearchIndex(  # a restart: model and vectors come from disk
        tmp_path / "ix.db", embedder=embedder_for(None, tmp_path / "ix.db"), mode="hybrid"
    )
    assert again.search("口渴") == first
    assert again.embedded == 0
    assert again.analysed == 0

    again.upsert("dm4", "糖尿病随访，二甲双胍剂量调整，口渴好转。")  # the corpus changed
    hits = again.search("口渴")
    assert again.embedded == len(NOTES)  # refit: every vector recomputed
    assert "dm4" in {h.key for h in hits.hits}
    again.remove(["dm1"])
    assert "dm1" not in {h.key for h in again.search("口渴").hits}


def test_fusion_is_reciprocal_rank_and_deterministic() -> None:
    fused = rrf([("a", 9.0), ("b", 5.0)], [("b", 0.9), ("c", 0.8)], k=60)
    assert [d for d, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    # ties break on the document: integers in order, never by arrival
    assert (
        rrf([(10, 1.0)], [(9, 1.0)])
        == rrf([(9, 1.0)], [(10, 1.0)])
        == [
            (9, 1 / 61),
            (10, 1 / 61),
        ]
    )
    vectors = np.eye(3, dtype=np.float32)
    query = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    ranked = dense_rank(query, ["x", "y", "z"], vectors)  # z: below the least similarity
    assert [d for d, _ in ranked] == ["y", "x"]
    assert [s for _, s in ranked] == pytest.approx([0.8, 0.6])


def test_the_same_corpus_gives_the_same_results(tmp_path: Path) -> None:
    one = _index(tmp_path / "a", NOTES).search("口渴 糖尿病")
    two = _index(tmp_path / "b", NOTES).search("口渴 糖尿病")
    assert one == two


def test_lsa_vectors_are_unit_rows_and_an_empty_corpus_is_harmless(tmp_path: Path) -> None:
    lsa = LsaEmbedder(None, dims=4)
    lsa.fit(list(NOTES.values()), corpus="c")
    vectors = lsa.embed(["口渴多饮", "ST段抬高", "zzz"])
    assert vectors.shape == (3, 4)
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0)
    assert not vectors[2].any()  # no known term: no signal
    empty = SearchIndex(tmp_path / "e.db", embedder=LsaEmbedder(None), mode="hybrid")
    assert empty.search("口渴").total == 0
    with pytest.raises(ValueError, match="embedder"):
        SearchIndex(tmp_path / "x.db", mode="hybrid")


def test_a_local_transformers_model_through_the_same_interface(tmp_path: Path) -> None:
    """A tiny random-weight BERT built here (nothing downloaded): the vectors are mean-pooled
    unit rows, persisted under the model's name and reused after a restart."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set("".join(NOTES.values())))]
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    transformers.BertTokenizerFast(vocab_file=str(model_dir / "vocab.txt")).save_pretrained(
        model_dir
    )
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(model_dir)

    embedder = embedder_for(model_dir, tmp_path / "ix.db")
    assert isinstance(embedder, TransformerEmbedder)
    vectors = embedder.embed(["口渴多饮", "胸痛"])
    assert vectors.shape == (2, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    ix = SearchIndex(tmp_path / "ix.db", embedder=embedder, mode="hybrid", min_similarity=-1.0)
    for key, text in NOTES.items():
        ix.upsert(key, text)
    first = ix.search("口渴")
    assert {"dm1", "dm2"} <= {h.key for h in first.hits}
    assert ix.embedded == len(NOTES)
    again = SearchIndex(
        tmp_path / "ix.db",
        embedder=TransformerEmbedder(model_dir),
        mode="hybrid",
        min_similarity=-1.0,
    )
    assert again.search("口渴") == first
    assert again.embedded == 0
