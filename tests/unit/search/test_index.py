"""The persistent SQLite index: incremental updates, restart, permissions, phrases."""

from __future__ import annotations

from pathlib import Path

from lakehouse.search import SearchIndex, add_words
from lakehouse.search import analyzer as analyzer_module

ZH = "门诊患者每三个月复查糖化血红蛋白，结果以百分比报告。"
EN = "Nurses check capillary Glucoses before meals; fasting glucose above 7 is reported."


def _index(tmp_path: Path) -> SearchIndex:
    ix = SearchIndex(tmp_path / "ix.db")
    ix.upsert("zh", ZH, title="糖化血红蛋白检测", info={"folder": "a"})
    ix.upsert("en", EN, title="Glucose monitoring", info={"folder": "b"})
    return ix


def test_finds_terms_with_spans_into_the_original_text(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    zh = ix.search("糖化血红蛋白")
    assert zh.total == 1
    assert zh.hits[0].key == "zh"
    assert [ZH[s:e] for s, e in zh.hits[0].snippet.spans] == ["糖化血红蛋白"]
    en = ix.search("GLUCOSE")
    assert en.hits[0].key == "en"
    assert [EN[s:e] for s, e in en.hits[0].snippet.spans] == ["Glucoses", "glucose"]


def test_phrases_are_required(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    assert ix.search('"fasting glucose"').total == 1
    assert ix.search('"glucose fasting"').total == 0
    assert ix.search('"复查糖化血红蛋白"').total == 1


def test_denied_documents_are_neither_returned_nor_counted(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    ix.upsert("secret", "glucose glucose glucose", info={"folder": "x"})
    visible = ix.search("glucose", allow=lambda key, info: info["folder"] != "x")
    assert visible.total == 1
    assert [h.key for h in visible.hits] == ["en"]


def test_unchanged_documents_are_not_reanalysed_and_survive_a_restart(tmp_path: Path) -> None:
    ix = _index(tmp_path)
    assert ix.analysed == 2
    assert not ix.upsert("zh", ZH, title="糖化血红蛋白检测", info={"folder": "moved"})
    assert ix.upsert("en", EN + " Updated.", title="Glucose monitoring")
    assert ix.analysed == 3
    again = SearchIndex(tmp_path / "ix.db")  # a restart
    assert again.analysed == 0
    assert again.search("updated").hits[0].key == "en"
    assert again.infos()["zh"] == {"folder": "moved"}
    assert again.remove(["en", "nope"]) == 1
    assert again.search("glucose").total == 0


def test_new_domain_words_rebuild_the_postings(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(analyzer_module, "_user_words", set(analyzer_module._user_words))
    _index(tmp_path)
    assert add_words(["胰岛素泵治疗"]) == 1
    reopened = SearchIndex(tmp_path / "ix.db")
    assert reopened.analysed == 2  # the signature changed: every document re-analysed
    assert SearchIndex(tmp_path / "ix.db").analysed == 0
