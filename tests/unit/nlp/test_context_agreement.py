"""The medspaCy comparison's logic (benchmarks/bench_context.py) on hand-made decisions, and
the scopes it led to: adjective cues qualify one list item, a cue inside an item of a coded
list stays in it. medspaCy itself is a benchmark peer, not run here."""

from __future__ import annotations

import pytest

from benchmarks.bench_context import (
    MODIFIERS,
    compare,
    drop_peer_cues,
    our_flags,
    peer_only_cues,
    resolve,
    snippet,
)
from models.nlp import load_pipeline
from models.nlp.components import list_items
from models.nlp.rules import context_rules

PRIORITY = ("negated", "family", "hypothetical", "possible", "historical")
F = False
T = True


def test_our_flags_take_every_cue_and_the_assertion() -> None:
    assert MODIFIERS == ("negated", "possible", "historical", "family", "hypothetical")
    assert our_flags("present", ()) == (F, F, F, F, F)
    assert our_flags("possible", ("possible", "historical")) == (F, T, T, F, F)
    # A section default (family history section) has no cue but is still a decision.
    assert our_flags("family", ()) == (F, F, F, T, F)


def test_resolve_follows_the_priority() -> None:
    assert resolve((F, F, F, F, F), PRIORITY) == "present"
    assert resolve((T, T, T, F, F), PRIORITY) == "negated"
    assert resolve((F, T, T, F, F), PRIORITY) == "possible"
    assert resolve((F, F, T, T, F), PRIORITY) == "family"


def test_agreement_overall_per_modifier_and_confusion() -> None:
    ours = [
        (F, F, T, F, F),  # historical; they agree
        (F, F, T, F, F),  # historical; they add negated
        (F, T, T, F, F),  # possible+historical; they say historical only
        (F, F, F, F, F),  # present; they add family
        (T, F, F, F, F),  # negated; not aligned on their side
    ]
    theirs = [
        (F, F, T, F, F),
        (T, F, T, F, F),
        (F, F, T, F, F),
        (F, F, F, T, F),
        None,
    ]
    ag = compare(ours, theirs, PRIORITY)
    assert (ag.n, ag.unaligned, ag.all_agree, ag.assertion_agree) == (4, 1, 1, 1)
    assert ag.overall == pytest.approx(0.25)
    # modifier -> [agree, ours only, theirs only, both]
    assert ag.per_modifier["negated"] == [3, 0, 1, 0]
    assert ag.per_modifier["possible"] == [3, 1, 0, 0]
    assert ag.per_modifier["historical"] == [4, 0, 0, 3]
    assert ag.per_modifier["family"] == [3, 0, 1, 0]
    assert ag.per_modifier["hypothetical"] == [4, 0, 0, 0]
    assert ag.rate("historical") == 1.0
    assert dict(ag.confusion) == {
        ("historical", "negated"): 1,
        ("possible", "historical"): 1,
        ("present", "family"): 1,
    }


def test_no_targets_is_full_agreement() -> None:
    ag = compare([], [], PRIORITY)
    assert ag.n == 0
    assert ag.overall == 1.0


def test_peer_only_cues_name_what_the_peer_added() -> None:
    ours = [(F, F, T, F, F), (F, F, T, F, F), (F, F, T, F, F)]
    theirs: list[tuple[bool, ...] | None] = [
        (T, F, T, T, F),
        (F, F, T, F, F),
        None,
    ]
    cues = [
        ["NEGATED_EXISTENCE:not", "FAMILY:partner", "HISTORICAL:history"],
        ["HISTORICAL:history"],
        ["NEGATED_EXISTENCE:no"],
    ]
    assert dict(peer_only_cues(ours, theirs, cues)) == {"negated: not": 1, "family: partner": 1}


def test_snippet_is_one_line_around_the_target() -> None:
    text = "Patient has a history of\nhypertension (disorder), stress (finding)."
    start = text.index("hypertension")
    out = snippet(text, start, start + len("hypertension"), width=40)
    assert "[hypertension]" in out
    assert "\n" not in out
    assert len(out) <= 40 + 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An adjective cue qualifies its own list item, not the items after it.
        (
            "History of hypertension, suspected pneumonia, fever.",
            [("hypertension", "historical"), ("pneumonia", "possible"), ("fever", "historical")],
        ),
        ("Possible pneumonia or anemia.", [("pneumonia", "possible"), ("anemia", "possible")]),
        # Clause-level cues still reach a whole list.
        ("Denies fever, cough.", [("fever", "negated"), ("cough", "negated")]),
        # What a screening test looks for is not asserted either way.
        ("Plan:\n- urine screening test for diabetes\n", [("diabetes", "hypothetical")]),
        ("Negative test for tuberculosis.", [("tuberculosis", "negated")]),
    ],
)
def test_list_scope_and_screening_cues(text: str, expected: list[tuple[str, str]]) -> None:
    doc = load_pipeline("en")(text)
    assert [(e.text, e._.assertion) for e in doc.ents] == expected


HISTORY = "Patient has a history of "


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A cue inside one coded item does not reach the other items ...
        (
            HISTORY + "hypertension (disorder), concussion with no loss of consciousness, "
            "chronic kidney disease stage 2 (disorder), anemia (disorder).",
            [
                ("hypertension", "historical"),
                ("chronic kidney disease", "historical"),
                ("anemia", "historical"),
            ],
        ),
        (
            HISTORY + "heart failure (disorder), mother with stroke (situation), "
            "anemia (disorder), stress (finding).",
            [("heart failure", "historical"), ("stroke", "family"), ("anemia", "historical")],
        ),
        # ... but qualifies its own item, and the lead-in reaches every item.
        (
            "History of stroke (disorder), no fever (finding), cough (finding).",
            [("stroke", "historical"), ("fever", "negated"), ("cough", "historical")],
        ),
        (
            "Denies chest pain (finding), cough (finding), fever (finding).",
            [("chest pain", "negated"), ("cough", "negated"), ("fever", "negated")],
        ),
        # What follows the last item's tag belongs to the whole list.
        (
            "Pneumonia (disorder), anemia (disorder), stroke (disorder) cannot be excluded.",
            [("Pneumonia", "possible"), ("anemia", "possible"), ("stroke", "possible")],
        ),
        # One tag is no coded list: plain prose, where a negation spans a comma list.
        (
            "History of stroke (disorder), no fever, cough.",
            [("stroke", "historical"), ("fever", "negated"), ("cough", "negated")],
        ),
    ],
)
def test_a_cue_inside_a_coded_list_item_stays_in_it(
    text: str, expected: list[tuple[str, str]]
) -> None:
    doc = load_pipeline("en")(text)
    assert [(e.text, e._.assertion) for e in doc.ents if e.label_ != "ANATOMY"] == expected


@pytest.mark.parametrize(
    ("text", "items"),
    [
        # The first segment holds the lead-in; the last item ends at its tag.
        (
            "History of a (finding), b, c (disorder), d (finding) were noted.",
            ["b", "c (disorder)", "d (finding)"],
        ),
        # Commas inside parentheses and a parenthesis that is no semantic tag.
        (
            "Hx: severe anxiety (panic) (finding), hemogram (x, y) (procedure), stress (finding).",
            ["hemogram (x, y) (procedure)", "stress (finding)"],
        ),
        ("Hx: a (finding), b (adult), c.", []),  # one semantic tag
        ("Plain text, no tags; none.", []),
        # Each sentence is looked at on its own.
        ("Hx: a (finding). B (disorder), c.", []),
    ],
)
def test_list_items_bounds(text: str, items: list[str]) -> None:
    starts = [0] + [i + 2 for i, c in enumerate(text) if c == "." and text[i + 1 : i + 2] == " "]
    found = list_items(text, starts, context_rules("en"))
    assert [text[a:b].strip() for a, b in found] == items


def test_no_list_items_in_chinese() -> None:
    doc = load_pipeline("zh")("既往高血压(disorder)、糖尿病(disorder)，否认冠心病史。")
    assert doc._.list_items == []


def test_drop_peer_cues_clears_only_flags_no_other_cue_set() -> None:
    theirs: list[tuple[bool, ...] | None] = [(T, F, T, T, F), (T, F, T, F, F), None]
    cues = [
        ["NEGATED_EXISTENCE:not", "FAMILY:partner", "HISTORICAL:history"],
        ["NEGATED_EXISTENCE:not", "NEGATED_EXISTENCE:denies", "HISTORICAL:history"],
        [],
    ]
    kept = drop_peer_cues(theirs, cues, ["negated: not", "Family: partner"])
    assert kept == [(F, F, T, F, F), (T, F, T, F, F), None]
