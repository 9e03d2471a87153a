"""ConText-style assertion: negated, possible, historical, family, hypothetical, present.

A cue (``resources/context.json``) asserts its category over the entities in its scope:
after it (forward), before it (backward) or both, within the sentence, up to a terminator;
a cue with ``"scope": "phrase"`` (an adjective such as "suspected") also stops at a comma, so
in "history of asthma, suspected covid-19, fever" it qualifies covid-19 and not fever.
Pseudo cues ("known history of", "无明显诱因") are masked first so that the cue words inside
them assert nothing. In an enumeration of coded concepts ("history of asthma (disorder),
concussion with no loss of consciousness, anemia (disorder)") a cue inside one item asserts
only within that item (``doc._.list_items``, ``components.list_items``): "no" reaches loss of
consciousness, not anemia, while the lead-in "history of" reaches every item. Where several
categories apply, the first in the file's ``priority`` wins; with no cue, a family-history
section means family and a past-history section historical.
"""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Sequence
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from models.nlp import rules
from models.nlp.components import ASSERTED_LABELS, register_extensions, sentence_at

_SECTION_DEFAULT = {"family_history": "family", "pmh": "historical"}
_PHRASE_END = ",;，；、"


def _mask(text: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is None:
        return text
    return pattern.sub(lambda m: " " * len(m[0]), text)


def _blocked(terminators: list[int], lo: int, hi: int) -> bool:
    return any(lo <= t < hi for t in terminators)


def _phrase_ends(text: str, lo: int, hi: int) -> bool:
    """A list separator between ``lo`` and ``hi``: the end of a ``phrase`` cue's scope."""
    return any(c in _PHRASE_END for c in text[lo:hi])


def _outside_item(items: Sequence[tuple[int, int]], cue: int, ent: Span) -> bool:
    """The cue at character ``cue`` lies inside a list item that does not hold ``ent``."""
    i = bisect.bisect_right(items, (cue, sys.maxsize)) - 1
    if i < 0 or not items[i][0] <= cue < items[i][1]:
        return False
    lo, hi = items[i]
    return not (lo <= ent.start_char and ent.end_char <= hi)


def assert_span(
    ent: Span,
    bounds: tuple[int, int],
    ctx: rules.ContextRules,
    items: Sequence[tuple[int, int]] = (),
    doc_text: str | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The assertion of ``ent`` in its sentence (character ``bounds``) and every category
    whose cue reached it; a cue inside one of the sorted list ``items`` reaches only an
    entity in the same item. ``doc_text``: ``ent.doc.text``, when the caller holds it."""
    base = bounds[0]
    if doc_text is None:
        doc_text = ent.doc.text
    text = _mask(doc_text[base : bounds[1]], ctx.pseudo_pattern)
    s, e = ent.start_char - base, ent.end_char - base
    # The entity's own characters are neither cues nor terminators.
    text = text[:s] + " " * (e - s) + text[e:]
    terms = (
        [m.start() for m in ctx.terminator_pattern.finditer(text)] if ctx.terminator_pattern else []
    )
    found: set[str] = set()
    for m in ctx.cue_pattern.finditer(text):
        cue = ctx.cues[m[0].lower()]
        if items and _outside_item(items, base + m.start(), ent):
            continue
        forward = cue.direction in ("forward", "both") and m.end() <= s
        backward = cue.direction in ("backward", "both") and m.start() >= e
        if forward and cue.phrase and _phrase_ends(text, m.end(), s):
            forward = False
        if backward and cue.phrase and _phrase_ends(text, e, m.start()):
            backward = False
        if (forward and not _blocked(terms, m.end(), s)) or (
            backward and not _blocked(terms, e, m.start())
        ):
            found.add(cue.category)
    ordered = tuple(c for c in ctx.priority if c in found)
    if ordered:
        return ordered[0], ordered
    default = _SECTION_DEFAULT.get(ent._.section or "")
    return (default or "present"), ()


@Language.factory("clinical_context", default_config={"lang": "zh"})
def make_context(nlp: Language, name: str, lang: str) -> Any:
    """Sets ``ent._.assertion`` and ``ent._.modifiers`` on clinical entities."""
    register_extensions()
    ctx = rules.context_rules(lang)

    def context(doc: Doc) -> Doc:
        items: list[tuple[int, int]] = doc._.list_items or []
        ents = [e for e in doc.ents if e.label_ in ASSERTED_LABELS]
        text = doc.text if ents else ""  # built once: doc.text joins every token anew
        for ent in ents:
            bounds = sentence_at(doc, ent.start_char)
            ent._.assertion, ent._.modifiers = assert_span(ent, bounds, ctx, items, text)
        return doc

    return context
