"""spaCy components of the clinical pipelines: sentences and sections, entities, assertion.

Each component reads the compiled rules of its language (``models.nlp.rules``), so changing a
lexicon or a cue is a data change. Entities are ``doc.ents`` with the extensions
``concept``, ``code``, ``system``, ``section``, ``assertion``, ``modifiers`` and, for drugs
and labs, ``dose``, ``route``, ``frequency``, ``value``.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

import numpy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc, Span

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
    for name in ("sections", "sent_starts"):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=None)


def sentence_at(doc: Doc, char: int) -> tuple[int, int]:
    """Character bounds of the sentence that holds ``char`` (no ``doc.sents`` walk)."""
    starts: list[int] = doc._.sent_starts or [0]
    i = bisect.bisect_right(starts, char) - 1
    end = starts[i + 1] if i + 1 < len(starts) else len(doc.text)
    return starts[max(i, 0)], end


def section_at(doc: Doc, char: int) -> str | None:
    """The section (``sections.json`` name) that holds character ``char`` of ``doc``."""
    sections: list[tuple[int, str]] = doc._.sections or []
    i = bisect.bisect_right([s for s, _ in sections], char) - 1
    return sections[i][1] if i >= 0 else None


@Language.factory("clinical_sentences", default_config={"lang": "zh"})
def make_sentences(nlp: Language, name: str, lang: str) -> Any:
    """Sentence starts after 。！？; . and line breaks; section headers from ``sections.json``."""
    pattern, names = rules.section_pattern(lang)

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
        doc._.sent_starts = starts
        doc._.sections = [
            (m.start(), names[(m.group(1) or m.group(2)).lower()])
            for m in pattern.finditer(doc.text)
        ]
        return doc

    return sentences


def _finding_spans(doc: Doc, lang: str) -> list[tuple[int, int, rules.Concept]]:
    """In a findings section, each sentence holding a finding keyword is a FINDING."""
    lex, pattern = rules.lexicon(lang), rules.finding_pattern(lang)
    out = []
    starts: list[int] = doc._.sent_starts or []
    for i, sent_start in enumerate(starts):
        if section_at(doc, sent_start) != "findings":
            continue
        text = doc.text[sent_start : starts[i + 1] if i + 1 < len(starts) else len(doc.text)]
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


def _attributes(span: Span, doc: Doc, sent_end: int) -> None:
    attrs = load_resource("lexicon")["attributes"]
    tail = doc.text[span.end_char : min(sent_end, span.end_char + 40)]
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


@Language.factory("clinical_entities", default_config={"lang": "zh"})
def make_entities(nlp: Language, name: str, lang: str) -> Any:
    """Lexicon entities (longest match first) and findings sentences, coded."""
    register_extensions()

    def entities(doc: Doc) -> Doc:
        candidates = _finding_spans(doc, lang)
        found = sorted(_lexicon_matches(doc.text, lang), key=lambda m: (-(m[1] - m[0]), m[0]))
        taken: list[tuple[int, int]] = [(s, e) for s, e, _ in candidates]
        for s, e, c in found:
            if all(e <= ts or s >= te for ts, te in taken):
                candidates.append((s, e, c))
                taken.append((s, e))
        spans = []
        for s, e, c in sorted(candidates, key=lambda m: m[0]):
            span = doc.char_span(s, e, label=c.label, alignment_mode="strict")
            if span is None:
                continue
            span._.concept, span._.code, span._.system = c.key, c.code, c.system
            span._.section = section_at(doc, s)
            spans.append(span)
        doc.ents = spans
        for ent in doc.ents:
            if ent.label_ in ("DRUG", "LAB", "VITAL"):
                _attributes(ent, doc, sentence_at(doc, ent.start_char)[1])
        return doc

    return entities
