"""Compiled forms of the rule files: lexicon patterns, section headers, assertion cues.

Everything here is derived from ``resources/*.json``; nothing clinical is written in code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from lakehouse.errors import ErrorCode, error
from models.nlp.resources import load_resource

LANGS = ("zh", "en")
_ASCII_WORD = "A-Za-z0-9"


@dataclass(frozen=True)
class Concept:
    """One lexicon concept: its key, label and code."""

    key: str
    label: str
    system: str | None
    code: str | None


@dataclass(frozen=True)
class Cue:
    """One assertion cue."""

    category: str
    direction: str  # forward | backward | both
    phrase: bool = False  # scope also ends at a comma: qualifies one item of a list


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise error(ErrorCode.NLP_LANGUAGE_UNSUPPORTED, name=lang, names=", ".join(LANGS))
    return lang


def _bounded(term: str) -> str:
    """A regex for ``term``; ASCII words get ASCII boundaries, never ``\\b`` next to Chinese."""
    body = re.escape(term)
    if term[:1].isascii() and term[:1].isalnum():
        body = f"(?<![{_ASCII_WORD}])" + body
    if term[-1:].isascii() and term[-1:].isalnum():
        body += f"(?![{_ASCII_WORD}])"
    return body


def _alternation(terms: list[str]) -> str:
    return "|".join(_bounded(t) for t in sorted(set(terms), key=len, reverse=True))


@dataclass(frozen=True)
class Lexicon:
    """Surface form -> concept, with one case-sensitive and one case-insensitive regex."""

    concepts: dict[str, Concept]  # lower-cased surface form -> concept
    exact: dict[str, Concept]  # case-sensitive surface forms (acronyms)
    pattern_ci: re.Pattern[str] | None
    pattern_cs: re.Pattern[str] | None
    findings: dict[str, Concept]  # finding keyword -> concept

    def lookup(self, surface: str) -> Concept | None:
        return self.exact.get(surface) or self.concepts.get(surface.lower())


def _is_acronym(term: str) -> bool:
    return term.isascii() and any(c.isupper() for c in term)


@cache
def lexicon(lang: str) -> Lexicon:
    """The entity lexicon of ``lang`` (zh also matches the English names of labs and drugs)."""
    check_lang(lang)
    concepts: dict[str, Concept] = {}
    exact: dict[str, Concept] = {}
    findings: dict[str, Concept] = {}
    for row in load_resource("lexicon")["concepts"]:
        c = Concept(row["key"], row["label"], row.get("system"), row.get("code"))
        terms = list(row.get(lang, []))
        if lang == "zh" and c.label in ("LAB", "VITAL", "DRUG"):
            terms += [t for t in row.get("en", []) if _is_acronym(t)]
        for t in terms:
            if c.label == "FINDING":
                findings[t.lower()] = c
            elif _is_acronym(t):
                exact[t] = c
            else:
                concepts.setdefault(t.lower(), c)
    ci = _alternation(list(concepts)) if concepts else ""
    cs = _alternation(list(exact)) if exact else ""
    return Lexicon(
        concepts,
        exact,
        re.compile(ci, re.IGNORECASE) if ci else None,
        re.compile(cs) if cs else None,
        findings,
    )


@cache
def finding_pattern(lang: str) -> re.Pattern[str]:
    return re.compile(_alternation(list(lexicon(lang).findings)), re.IGNORECASE)


@cache
def section_pattern(lang: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """A header starting a line (``诊断：``, ``Plan:``, ``# Plan``), and header -> section name."""
    names: dict[str, str] = {}
    for section, forms in load_resource("sections")["sections"].items():
        for form in forms.get(check_lang(lang), []):
            names[form.lower()] = section
    alt = "|".join(re.escape(h) for h in sorted(names, key=len, reverse=True))
    return re.compile(
        rf"^[ \t]*(?:({alt})[ \t]*[:：]|#+[ \t]*({alt})[ \t]*$)", re.IGNORECASE | re.MULTILINE
    ), names


@dataclass(frozen=True)
class ContextRules:
    """Compiled ConText rules of one language."""

    cues: dict[str, Cue]  # lower-cased phrase -> cue
    cue_pattern: re.Pattern[str]
    pseudo_pattern: re.Pattern[str] | None
    terminator_pattern: re.Pattern[str] | None
    priority: tuple[str, ...]
    # Enumerations of coded concepts (``list_items`` in context.json): a semantic tag such as
    # "(finding)", the characters that separate items, how many tagged items make a list.
    tag_pattern: re.Pattern[str] | None = None
    item_separators: str = ""
    min_tagged: int = 2


@cache
def context_rules(lang: str) -> ContextRules:
    data = load_resource("context")
    check_lang(lang)
    cues = {
        c["phrase"].lower(): Cue(c["category"], c["direction"], c.get("scope") == "phrase")
        for c in data["cues"][lang]
    }
    pseudo = data["pseudo"].get(lang, [])
    terms = data["terminators"].get(lang, [])
    items = data.get("list_items", {})
    tags = items.get(lang, {}).get("semantic_tags", [])
    tag_alt = "|".join(re.escape(t) for t in sorted(tags, key=len, reverse=True))
    return ContextRules(
        cues,
        re.compile(_alternation(list(cues)), re.IGNORECASE),
        re.compile(_alternation(pseudo), re.IGNORECASE) if pseudo else None,
        re.compile(_alternation(terms), re.IGNORECASE) if terms else None,
        tuple(data["priority"]),
        re.compile(rf"\((?:{tag_alt})\)", re.IGNORECASE) if tags else None,
        "".join(items.get(lang, {}).get("separators", [])),
        int(items.get("min_tagged", 2)),
    )


def user_words(lang: str) -> list[str]:
    """Words a segmenter must keep whole: every lexicon term and cue (for jieba)."""
    lex = lexicon(lang)
    words = list(lex.concepts) + list(lex.exact) + list(lex.findings)
    words += list(context_rules(lang).cues)
    return [w for w in words if not w.isascii()]
