"""spaCy components of the clinical pipelines: sentences and sections, entities, assertion.

Each component reads the compiled rules of its language (``models.nlp.rules``), so changing a
lexicon or a cue is a data change. Entities are ``doc.ents`` with the extensions
``concept``, ``code``, ``system``, ``section``, ``assertion``, ``modifiers`` and, for drugs
and labs, ``dose``, ``route``, ``frequency``, ``value``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc, Span

from lakehouse.errors import ErrorCode, error
from models.nlp import rules
from models.nlp.resources import load_resource

ASSERTED_LABELS = ("CONDITION", "SYMPTOM", "FINDING", "DRUG", "PROCEDURE")
_SENT_END = ("。", "！", "？", "!", "?", ".", "；")
_EXTENSIONS: dict[str, Any] = {
    "concept": None,
    "code": None,
    "system": None,
    "section": None,
    "assertion": "present",
    "modifiers": (),
    "dose": None,
    "route": None,
    "frequency": None,
    "value": None,
}


def register_extensions() -> None:
    for name, default in _EXTENSIONS.items():
        if not Span.has_extension(name):
            Span.set_extension(name, default=default)
    for name in ("sections", "sent_starts", "list_items"):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=None)


def text_length(doc: Doc) -> int:
    """``len(doc.text)`` from the last token: ``doc.text`` joins every token anew."""
    if not len(doc):
        return 0
    last = doc[-1]
    return int(last.idx) + len(last.text_with_ws)


def sentence_at(doc: Doc, char: int) -> tuple[int, int]:
    """Character bounds of the sentence that holds ``char`` (no ``doc.sents`` walk)."""
    starts: list[int] = doc._.sent_starts or [0]
    i = bisect.bisect_right(starts, char) - 1
    end = starts[i + 1] if i + 1 < len(starts) else text_length(doc)
    return starts[max(i, 0)], end


def section_at(doc: Doc, char: int) -> str | None:
    """The section (``sections.json`` name) that holds character ``char`` of ``doc``."""
    sections: list[tuple[int, str]] = doc._.sections or []
    i = bisect.bisect_right(sections, char, key=lambda section: section[0]) - 1
    return sections[i][1] if i >= 0 else None


def _segments(text: str, lo: int, hi: int, separators: str) -> list[tuple[int, int]]:
    """``text[lo:hi]`` cut at each separator outside parentheses, as character bounds."""
    out, start, depth = [], lo, 0
    for m in re.compile(f"[(){re.escape(separators)}]").finditer(text, lo, hi):
        c = m[0]
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append((start, m.start()))
            start = m.end()
    out.append((start, hi))
    return out


def list_items(text: str, starts: Sequence[int], ctx: rules.ContextRules) -> list[tuple[int, int]]:
    """Character bounds of the items of each enumeration of coded concepts in ``text``.

    A sentence (``starts``) is such an enumeration when at least ``ctx.min_tagged`` of its
    segments (cut at ``ctx.item_separators`` outside parentheses) end in a semantic tag
    ("Patient has a history of asthma (disorder), not in labor force (finding), stress
    (finding)."). Every segment after the first is one item, the last one up to its last tag;
    the first segment holds the lead-in ("Patient has a history of") and what follows the
    last tag ("... were ruled out") belongs to the whole list, so neither is an item. Each
    item is a complete coded statement: ``clinical_context`` keeps the scope of a cue inside
    an item to that item.
    """
    if ctx.tag_pattern is None:
        return []
    tag_ends = [m.end() for m in ctx.tag_pattern.finditer(text)]
    if len(tag_ends) < ctx.min_tagged:
        return []
    out: list[tuple[int, int]] = []
    bounds = [*starts, len(text)]
    for lo, hi in itertools.pairwise(bounds):
        first, last = bisect.bisect_left(tag_ends, lo), bisect.bisect_right(tag_ends, hi)
        if last - first < ctx.min_tagged:
            continue
        ends = set(tag_ends[first:last])
        segs = _segments(text, lo, hi, ctx.item_separators)
        tagged = sum(a + len(text[a:b].rstrip(" \t\r\n.!?")) in ends for a, b in segs)
        if tagged < ctx.min_tagged:
            continue
        out.extend(segs[1:-1])
        a, b = segs[-1]
        inside = [e for e in tag_ends[first:last] if a < e <= b]
        if inside:
            out.append((a, inside[-1]))
    return out


@Language.factory("clinical_sentences", default_config={"lang": "zh"})
def make_sentences(nlp: Language, name: str, lang: str) -> Any:
    """Sentence starts after 。！？; . and line breaks; section headers from ``sections.json``;
    the items of enumerations of coded concepts (:func:`list_items`) as ``doc._.list_items``."""
    pattern, names = rules.section_pattern(lang)
    ctx = rules.context_rules(lang)

    def sentences(doc: Doc) -> Doc:
        flags, starts = [], []
        prev_text, prev_ws = "\n", ""
        for tok in doc:
            text = tok.text
            ends = prev_text.endswith(_SENT_END) and (lang == "zh" or bool(prev_ws))
            start = "\n" in prev_text or text[:1] == "\n" or ends
            flags.append(1 if start else -1)
            if start:
                starts.append(tok.idx)
            prev_text, prev_ws = text, tok.whitespace_
        if flags:
            values: Any = numpy.array(flags, dtype="int64").astype("uint64")
            doc.from_array([SENT_START], values)
        text = doc.text
        doc._.sent_starts = starts
        doc._.list_items = list_items(text, starts, ctx)
        doc._.sections = [
            (m.start(), names[(m.group(1) or m.group(2)).lower()]) for m in pattern.finditer(text)
        ]
        return doc

    return sentences


def _finding_spans(doc: Doc, doc_text: str, lang: str) -> list[tuple[int, int, rules.Concept]]:
    """In a findings section, each sentence holding a finding keyword is a FINDING
    (``doc_text``: ``doc.text``)."""
    lex, pattern = rules.lexicon(lang), rules.finding_pattern(lang)
    out = []
    starts: list[int] = doc._.sent_starts or []
    for i, sent_start in enumerate(starts):
        if section_at(doc, sent_start) != "findings":
            continue
        text = doc_text[sent_start : starts[i + 1] if i + 1 < len(starts) else len(doc_text)]
        m = pattern.search(text)
        if m is None:
            continue
        head = rules.section_pattern(lang)[0].match(text)
        start = head.end() if head else 0
        start += len(text[start:]) - len(text[start:].lstrip())
        end = len(text.rstrip())
        out.append((sent_start + start, sent_start + end, lex.findings[m[0].lower()]))
    return out


def _lexicon_matches(text: str, lang: str) -> list[tuple[int, int, rules.Concept]]:
    lex = rules.lexicon(lang)
    out = []
    for pat in (lex.pattern_ci, lex.pattern_cs):
        for m in pat.finditer(text) if pat else ():
            concept = lex.lookup(m[0])
            if concept is not None:
                out.append((m.start(), m.end(), concept))
    return out


def _attributes(span: Span, text: str, sent_end: int) -> None:
    """Dose, route and frequency of a drug, value of a lab, from what follows it in ``text``
    (``doc.text``) up to ``sent_end``."""
    attrs = load_resource("lexicon")["attributes"]
    tail = text[span.end_char : min(sent_end, span.end_char + 40)]
    if span.label_ == "DRUG":
        dose = re.search(attrs["dose"], tail)
        span._.dose = dose[0] if dose else None
        routes = attrs["route"]["zh"] + attrs["route"]["en"]
        span._.route = next((r for r in routes if re.search(rules._bounded(r), tail)), None)
        span._.frequency = next(
            (f for f in attrs["frequency"] if re.search(rules._bounded(f), tail)), None
        )
    elif span.label_ in ("LAB", "VITAL"):
        value = re.match(r"\s*[:：为是]?\s*(" + attrs["value"] + ")", tail)
        span._.value = value[1].strip() if value and value[1].strip() else None


#: How ``clinical_entities`` combines the spans a trained NER proposed (``doc.ents`` when it
#: runs, set by a trained component placed before it) with the rules' spans: ``rules`` drops
#: them, ``add`` keeps the rules' spans and adds the proposed ones that overlap none, ``longest``
#: keeps the longest of overlapping spans (the rules' on ties). See docs/adr/0021.
MERGE_POLICIES = ("rules", "add", "longest")
#: Labels a trained component may propose (the ones the synthetic hospital annotates).
TRAINED_LABELS = ("CONDITION", "SYMPTOM", "FINDING")

_Candidate = tuple[int, int, str, "rules.Concept | None"]


def _merge(
    found: Sequence[_Candidate], proposed: Sequence[_Candidate], merge: str
) -> list[_Candidate]:
    """The rules' non-overlapping ``found`` spans combined with ``proposed`` ones by ``merge``."""
    if merge == "rules" or not proposed:
        return list(found)
    if merge == "add":
        ranked = [*found, *sorted(proposed, key=lambda m: (-(m[1] - m[0]), m[0]))]
    else:  # longest; the sort is stable, so the rules' span wins a tie
        ranked = sorted([*found, *proposed], key=lambda m: -(m[1] - m[0]))
    out: list[_Candidate] = []
    for cand in ranked:
        if all(cand[1] <= o[0] or cand[0] >= o[1] for o in out):
            out.append(cand)
    return out


@Language.factory("clinical_entities", default_config={"lang": "zh", "merge": "add"})
def make_entities(nlp: Language, name: str, lang: str, merge: str = "add") -> Any:
    """Lexicon entities (longest match first) and findings sentences, coded; combined with a
    trained component's proposals (``doc.ents`` on arrival) by ``merge``."""
    register_extensions()
    if merge not in MERGE_POLICIES:
        reason = f"one of {MERGE_POLICIES}"
        raise error(ErrorCode.CONFIG_INVALID, setting="nlp.merge", reason=reason)
    lex = rules.lexicon(lang)

    def entities(doc: Doc) -> Doc:
        proposed: list[_Candidate] = []
        for ent in doc.ents:
            if ent.label_ in TRAINED_LABELS:
                known = lex.lookup(ent.text)
                concept = known if known is not None and known.label == ent.label_ else None
                proposed.append((ent.start_char, ent.end_char, ent.label_, concept))
        text = doc.text  # one join of the tokens; doc.text builds it anew on every access
        findings = _finding_spans(doc, text, lang)
        candidates: list[_Candidate] = [(s, e, c.label, c) for s, e, c in findings]
        found = sorted(_lexicon_matches(text, lang), key=lambda m: (-(m[1] - m[0]), m[0]))
        taken: list[tuple[int, int]] = [(s, e) for s, e, _, _ in candidates]
        for s, e, c in found:
            if all(e <= ts or s >= te for ts, te in taken):
                candidates.append((s, e, c.label, c))
                taken.append((s, e))
        spans = []
        for s, e, label, coded in sorted(_merge(candidates, proposed, merge), key=lambda m: m[0]):
            span = doc.char_span(s, e, label=label, alignment_mode="strict")
            if span is None:
                continue
            if coded is not None:
                span._.concept, span._.code, span._.system = coded.key, coded.code, coded.system
            span._.section = section_at(doc, s)
            spans.append(span)
        doc.ents = spans
        for ent in doc.ents:
            if ent.label_ in ("DRUG", "LAB", "VITAL"):
                _attributes(ent, text, sentence_at(doc, ent.start_char)[1])
        return doc

    return entities
