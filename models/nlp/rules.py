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


def _flat_alternation(terms: list[str]) -> str:
    """``term|term|...``, longest first: at each position the longest term that matches."""
    return "|".join(_bounded(t) for t in sorted(set(terms), key=len, reverse=True))


def _exclusive(chars: list[str], flags: int) -> bool:
    """No text character matches two of ``chars`` (case folding under ``re.IGNORECASE``)."""
    if not flags & re.IGNORECASE:
        return True
    cased = [c for c in chars if c.lower() != c or c.upper() != c]
    return not any(
        re.fullmatch(re.escape(a), b, flags) for i, a in enumerate(cased) for b in cased[i + 1 :]
    )


_Trie = dict[str, "_Trie"]


def _trie_alternation(terms: list[str], flags: int) -> str | None:
    """The terms as a prefix tree (``di(?:abetes|zziness)``) that matches exactly what
    :func:`_flat_alternation` matches; ``None`` where it cannot (two branches that match the
    same character, an empty term).

    Same matches: at a node the regex tries the longer continuations before ending there, and
    the branches of a node are exclusive (checked), so the first success is the longest term,
    as in the flat form. The boundaries of :func:`_bounded` keep their meaning: the end check
    follows the term's last character; the start check, "no ASCII letter or digit before",
    is a lookbehind placed after the first character (``d(?<![A-Za-z0-9]d)``), so that the
    pattern starts with a literal character, which ``re`` scans for quickly. A flat
    alternation of 67 lexicon terms starting with lookbehinds ran ~6x slower on the Synthea
    notes.
    """
    if not terms or "" in terms:
        return None
    root: _Trie = {}
    for term in set(terms):
        node = root
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: _Trie, prefix: str) -> str | None:
        chars = sorted(c for c in node if c)
        if not _exclusive(chars, flags):
            return None
        alts = []
        for ch in chars:
            rest = emit(node[ch], prefix + ch)
            if rest is None:
                return None
            edge = re.escape(ch)
            if not prefix and ch.isascii() and ch.isalnum():
                edge += f"(?<![{_ASCII_WORD}]{re.escape(ch)})"
            alts.append(edge + rest)
        if "" in node:  # a term ends here: after every longer one
            last = prefix[-1:]
            alts.append(f"(?![{_ASCII_WORD}])" if last.isascii() and last.isalnum() else "")
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(root, "")


def _alternation(terms: list[str], flags: int = 0) -> re.Pattern[str]:
    """One regex for ``terms`` under ``flags``: at each position the longest term, bounded by
    :func:`_bounded`; compiled as a prefix tree where that is exact (faster)."""
    return re.compile(_trie_alternation(terms, flags) or _flat_alternation(terms), flags)


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
    return Lexicon(
        concepts,
        exact,
        _alternation(list(concepts), re.IGNORECASE) if concepts else None,
        _alternation(list(exact)) if exact else None,
        findings,
    )


@cache
def finding_pattern(lang: str) -> re.Pattern[str]:
    return _alternation(list(lexicon(lang).findings), re.IGNORECASE)


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
        _alternation(list(cues), re.IGNORECASE),
        _alternation(pseudo, re.IGNORECASE) if pseudo else None,
        _alternation(terms, re.IGNORECASE) if terms else None,
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
