"""Analyzer, query parsing, BM25 and snippets (pure Python, no Spark)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lakehouse.search import (
    BM25,
    Analyzer,
    match_spans,
    merge,
    normalize,
    parse_query,
    snippet,
    stem,
)

A = Analyzer()


@pytest.mark.parametrize(
    ("text", "term", "original"),
    [
        ("患者糖化血红蛋白升高", "血红蛋白", "血红蛋白"),
        ("患者糖化血红蛋白升高", "糖化", "糖化"),
        ("复查ＨｂＡ１ｃ为6.8%", "hba1c", "ＨｂＡ１ｃ"),  # full-width, offsets kept
        ("Fasting Glucoses were high", "glucose", "Glucoses"),
        ("Two studies", "study", "studies"),
        ("value 6.8 %", "6.8", "6.8"),
        ("血糖 glucose 混排", "glucose", "glucose"),
    ],
)
def test_tokens_carry_spans_into_the_original_text(text: str, term: str, original: str) -> None:
    spans = [(t.start, t.end) for t in A.tokens(text) if t.term == term]
    assert spans, A.terms(text)
    assert text[spans[0][0] : spans[0][1]] == original


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        ("glucoses", "glucose"),
        ("studies", "study"),
        ("patients", "patient"),
        ("boxes", "box"),
        ("status", "status"),
        ("diagnosis", "diagnosis"),
        ("glass", "glass"),
        ("hba1c", "hba1c"),
        ("gas", "gas"),
    ],
)
def test_light_stemming(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_stop_words_are_dropped_in_both_languages() -> None:
    assert A.terms("the level of 血糖的变化") == ["level", "血糖", "变化"]


def test_normalize_keeps_one_span_per_original_character() -> None:
    norm = normalize("Ａﬁ")  # full-width A, the fi ligature (two characters from one)
    assert norm.text == "afi"
    assert norm.span(1, 3) == (1, 2)


def test_jieba_starts_quietly_once() -> None:
    code = "from lakehouse.search import Analyzer; print(Analyzer().terms('糖化血红蛋白'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "血红蛋白" in out.stdout
    assert out.stderr == ""


def test_query_terms_and_phrases_mixed() -> None:
    q = parse_query('糖化血红蛋白 "Blood  Glucose" “空腹 血糖” metformin', A)
    assert [p.text for p in q.phrases] == ["blood glucose", "空腹 血糖"]
    assert {"blood", "glucose", "空腹", "血糖", "metformin", "血红蛋白"} <= set(q.terms)
    assert q.runs == ("糖化血红蛋白",)
    assert parse_query('"unclosed phrase', A).terms == ("unclosed", "phrase")
    assert parse_query("the of 的", A).empty


def test_bm25_prefers_rarer_terms_and_shorter_documents() -> None:
    postings = {"a": {1: 1.0, 2: 1.0, 3: 1.0}, "b": {2: 1.0}}
    lengths = {1: 10, 2: 10, 3: 100}
    ranked = BM25().rank(["a", "b"], postings, lengths)
    assert [d for d, _ in ranked] == [2, 1, 3]
    # b=0: no length normalization, documents 1 and 3 tie
    flat = dict(BM25(k1=1.2, b=0.0).rank(["a"], postings, lengths))
    assert flat[1] == pytest.approx(flat[3])
    with pytest.raises(ValueError, match="BM25 needs"):
        BM25(b=2)


def test_bm25_statistics_come_from_the_visible_documents_only() -> None:
    postings = {"x": {1: 1.0, 2: 1.0}}
    alone = BM25().rank(["x"], postings, {1: 5})
    assert alone == BM25().rank(["x"], {"x": {1: 1.0}}, {1: 5})


def test_chinese_match_inside_a_sentence_is_one_highlight() -> None:
    text = "门诊患者每三个月复查糖化血红蛋白，结果以百分比报告。"
    q = parse_query("糖化血红蛋白", A)
    spans = match_spans(text, q, A)
    assert [text[s:e] for s, e in spans] == ["糖化血红蛋白"]
    snip = snippet(text, spans)
    assert "<mark>糖化血红蛋白</mark>" in snip.html
    assert snip.spans == tuple(spans)


def test_snippet_escapes_everything_but_the_marks() -> None:
    text = 'Before <img src=x onerror="alert(1)"> the glucose <b>level</b> & after'
    q = parse_query("glucose", A)
    snip = snippet(text, match_spans(text, q, A))
    assert "<img" not in snip.html
    assert "<b>" not in snip.html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in snip.html
    assert snip.html.count("<mark>") == 1
    assert "&amp; after" in snip.html
    ((s, e),) = snip.spans
    assert text[s:e] == "glucose"


def test_snippet_window_holds_the_most_distinct_matches() -> None:
    filler = "lorem ipsum dolor sit amet " * 20
    text = f"glucose once. {filler} glucose and insulin together. {filler}"
    q = parse_query("glucose insulin", A)
    snip = snippet(text, match_spans(text, q, A), width=80)
    assert "<mark>insulin</mark>" in snip.html
    assert "<mark>glucose</mark>" in snip.html
    assert snip.html.startswith("…")
    assert snip.html.endswith("…")
    assert all(snip.start <= s < e <= snip.end for s, e in snip.spans)


def test_merge_joins_touching_spans() -> None:
    assert merge([(4, 8), (2, 4), (5, 7), (10, 12)]) == [(2, 8), (10, 12)]


def test_long_texts_are_matched_chunk_by_chunk_with_the_same_spans() -> None:
    base = "门诊患者复查糖化血红蛋白。Patients' glucoses above 7 mmol/L. "
    text = base * 1200 + "无关内容。" * 5000 + "末尾再次提到糖化血红蛋白。"
    q = parse_query('糖化血红蛋白 glucose "above 7"', A)
    chunked = match_spans(text, q, A)
    whole = merge(
        [(t.start, t.end) for t in A.tokens(text) if t.term in q.terms]
        + q.phrases[0].find(normalize(text))
    )[:2000]
    assert len(text) > 20_000
    assert chunked == whole
    assert text[chunked[-1][0] : chunked[-1][1]] in ("糖化血红蛋白", "above 7", "glucoses")
    far = "无关内容。" * 6000 + "这里提到糖化血红蛋白。"
    assert [far[s:e] for s, e in match_spans(far, q, A)] == ["糖化血红蛋白"]
