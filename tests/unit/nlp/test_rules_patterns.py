"""The rules' term regexes: the prefix-tree form matches exactly what the flat one does."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.nlp import rules
from models.nlp.resources import load_resource


def _term_lists(lang: str) -> dict[str, tuple[list[str], int]]:
    lex = rules.lexicon(lang)
    data = load_resource("context")
    return {
        "lexicon": (list(lex.concepts), re.IGNORECASE),
        "acronyms": (list(lex.exact), 0),
        "findings": (list(lex.findings), re.IGNORECASE),
        "cues": (list(rules.context_rules(lang).cues), re.IGNORECASE),
        "pseudo": (data["pseudo"].get(lang, []), re.IGNORECASE),
        "terminators": (data["terminators"].get(lang, []), re.IGNORECASE),
    }


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


@pytest.mark.parametrize("lang", rules.LANGS)
@pytest.mark.parametrize(
    "kind", ["lexicon", "acronyms", "findings", "cues", "pseudo", "terminators"]
)
def test_tree_matches_flat_alternation(lang: str, kind: str) -> None:
    terms, flags = _term_lists(lang)[kind]
    if not terms:
        pytest.skip(f"no {kind} for {lang}")
    assert rules._trie_alternation(terms, flags) is not None  # the fast form is in use
    fast, flat = rules._alternation(terms, flags), re.compile(rules._flat_alternation(terms), flags)
    # Pieces that test the boundaries and the longest match: whole terms, their prefixes,
    # letters and digits next to them, case changes.
    pieces = sorted({t[:k] for t in terms for k in (len(t), len(t) - 1, 1) if k > 0})
    pieces += [" ", "a", "Z", "7", "-", "(", ".", "\n", "、"]
    text = st.lists(st.sampled_from(pieces), max_size=12).map("".join)

    @settings(max_examples=60, deadline=None)
    @given(text, st.booleans())
    def same(s: str, upper: bool) -> None:
        s = s.upper() if upper else s
        assert _spans(fast, s) == _spans(flat, s)

    same()


@pytest.mark.parametrize(
    ("terms", "flags", "text", "spans"),
    [
        (
            ["pain", "chest pain", "pain crisis"],
            re.I,
            "Chest pain; PAIN CRISIS, pains",
            [(0, 10), (12, 23)],
        ),
        (["a1c", "hba1c"], re.I, "ha1c HbA1c a1c-x", [(5, 10), (11, 14)]),
        (["covid-19", "covid"], re.I, "covid-19x covid-1 (covid-19)", [(0, 5), (10, 15), (19, 27)]),
        (["否认", "否认有"], 0, "患者否认有胸痛", [(2, 5)]),
        (["µg", "μg"], re.I, "5 µg 5 μg 5 ΜG", [(2, 4), (7, 9), (12, 14)]),
    ],
)
def test_alternation_longest_bounded(
    terms: list[str], flags: int, text: str, spans: list[tuple[int, int]]
) -> None:
    assert _spans(rules._alternation(terms, flags), text) == spans
    assert _spans(re.compile(rules._flat_alternation(terms), flags), text) == spans


def test_tree_declines_overlapping_branches() -> None:
    # µ (micro sign) and μ (Greek mu) match each other case-insensitively: two branches of
    # one node would both match, so the flat form is used.
    assert rules._trie_alternation(["µg", "μg"], re.I) is None
    assert rules._trie_alternation(["µg", "μg"], 0) is not None
    assert rules._trie_alternation(["", "x"], 0) is None
