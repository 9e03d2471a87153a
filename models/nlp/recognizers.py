"""Presidio recognizers for Chinese and English PHI in clinical notes.

Names (surname list and context words from ``resources/phi.json``, jieba for the end of a
name), 身份证号 (validated: province, birth date; the check digit raises the score), mobile
and landline phones, Chinese addresses, MRNs and visit numbers, dates and e-mail addresses.
Regexes use ``(?<!\\d)`` lookarounds, never ``\\b`` next to Chinese characters.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from models.nlp import identifiers
from models.nlp.resources import load_resource

ID_RE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
MOBILE_RE = re.compile(r"(?<![\d+])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?![\d])")
LANDLINE_RE = re.compile(r"(?<![\d-])(?:\(0\d{2,3}\)|0\d{2,3}-?)[2-9]\d{6,7}(?![\d-])")
_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
DATE_RE = re.compile(
    r"(?<!\d)(?:(?:(?:19|20)\d{2}(?:-\d{1,2}-\d{1,2}|/\d{1,2}/\d{1,2}|\.\d{1,2}\.\d{1,2}"
    r"|年\d{1,2}月\d{1,2}日)|\d{1,2}/\d{1,2}/(?:19|20)\d{2}"
    rf"|{_MONTHS} \d{{1,2}}, (?:19|20)\d{{2}}|\d{{1,2}} {_MONTHS} (?:19|20)\d{{2}})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?)(?!\d)"
)
EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_HAN = "\u4e00-\u9fff"


@cache
def _phi() -> dict[str, Any]:
    return load_resource("phi")


@cache
def address_pattern() -> re.Pattern[str]:
    a = _phi()["address"]

    def alt(xs: list[str]) -> str:
        return "|".join(re.escape(x) for x in sorted(xs, key=len, reverse=True))

    province = rf"(?:{alt(a['municipalities'])}|[{_HAN}]{{2,7}}?(?:{alt(a['province_suffix'])}))"
    city = rf"(?:[{_HAN}]{{2,7}}?(?:{alt(a['city_suffix'])}))"
    district = rf"(?:[{_HAN}]{{1,6}}?(?:{alt(a['district_suffix'])}))"
    street = rf"[{_HAN}A-Za-z0-9]{{1,10}}?(?:{alt(a['street_suffix'])})"
    units = rf"(?:[0-9０-９]+(?:{alt(a['unit_suffix'])}))+"
    return re.compile(rf"{province}?{city}?{district}?{street}{units}")


def surnames() -> tuple[frozenset[str], tuple[str, ...]]:
    s = _phi()["surnames"]
    return frozenset(s["single"]), tuple(s["compound"])


class _Base(EntityRecognizer):
    """A recognizer over the raw text (no NLP artifacts needed)."""

    ENTITY = ""

    def __init__(self, lang: str) -> None:
        super().__init__(
            supported_entities=[self.ENTITY],
            name=f"{type(self).__name__}_{lang}",
            supported_language=lang,
            version=str(_phi()["version"]),
        )

    def load(self) -> None:
        return None

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        raise NotImplementedError

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        return [RecognizerResult(self.ENTITY, s, e, score) for s, e, score in self.spans(text)]


class IdCardRecognizer(_Base):
    """身份证号: a real province and birth date; a right check digit scores 1.0, else 0.7."""

    ENTITY = "ID_CARD"

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        out = []
        for m in ID_RE.finditer(text):
            if identifiers.looks_like_id(m[0]):
                out.append((m.start(), m.end(), 1.0 if identifiers.is_valid_id(m[0]) else 0.7))
        return out


class PhoneRecognizer(_Base):
    """Mobile numbers (1[3-9] + 9 digits, optional +86) and landlines (0area-local)."""

    ENTITY = "PHONE"

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        out = [(m.start(), m.end(), 0.9) for m in MOBILE_RE.finditer(text)]
        out += [(m.start(), m.end(), 0.6) for m in LANDLINE_RE.finditer(text)]
        return out


class AddressRecognizer(_Base):
    """Chinese addresses: [province][city][district] street + numbered units (号/栋/室)."""

    ENTITY = "ADDRESS"

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        return [(m.start(), m.end(), 0.85) for m in address_pattern().finditer(text)]


class DateRecognizer(_Base):
    """Dates with an optional time: 2026-02-24 21:27, 2026/2/24, 2026年2月24日, 02/24/2026,
    Feb 24, 2026, 24 February 2026."""

    ENTITY = "DATE"

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        return [(m.start(), m.end(), 0.85) for m in DATE_RE.finditer(text)]


class IdentifierRecognizer(_Base):
    """Visit numbers (MZ/ZY + 9 digits) and MRNs after 病案号/住院号/MRN."""

    ENTITY = "MRN"

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        ids = _phi()["identifiers"]
        out = [(m.start(), m.end(), 0.8) for m in re.finditer(ids["visit_no"], text)]
        out += [(m.start(1), m.end(1), 0.8) for m in re.finditer(ids["mrn"], text)]
        return out


class EmailRecognizer(_Base):
    """E-mail addresses (a plain regex: no public-suffix list is fetched)."""

    ENTITY = "EMAIL"

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        return [(m.start(), m.end(), 0.9) for m in EMAIL_RE.finditer(text)]


class NameRecognizer(_Base):
    """Person names after a context word (姓名：, 医师签名：, Patient:, Dr.).

    Chinese: a known surname (single or compound) and one or two given characters, ended
    by a non-Han character or, inside running text, by the jieba word boundary. Latin
    script: one to three capitalised words, or a pinyin surname in capitals (``ZHANG Wei``).
    Without a context word, a surname and one or two characters between a clause start and
    a word such as 诉/因/于 (``name_running_text``) is a weaker hit, unless jieba's
    dictionary knows the word as something other than a name.
    """

    ENTITY = "NAME"

    def __init__(self, lang: str) -> None:
        super().__init__(lang)
        ctx = _phi()["name_context"]
        words = sorted(set(ctx["zh"] + ctx["en"]), key=len, reverse=True)
        alt = "|".join(re.escape(w) for w in words)
        self._zh = re.compile(rf"(?:{alt})[ \t]*[:：]?[ \t]*([{_HAN}]{{2,8}})")
        self._en = re.compile(
            rf"(?:{alt})[ \t]*[:：]?[ \t]*([A-Z][a-z]+(?:[ -][A-Z][a-z]+){{0,2}}"
            r"|[A-Z]{2,}(?: [A-Z][a-z]+| [A-Z]{2,}){1,2}(?![A-Za-z]))"
        )
        run = _phi()["name_running_text"]
        sur = "|".join(re.escape(c) for c in sorted(surnames()[1], key=len, reverse=True))
        single = "".join(sorted(surnames()[0]))
        before = "".join(re.escape(c) for c in run["before"])
        after = "|".join(re.escape(w) for w in run["after"])
        self._running = re.compile(
            rf"(?:(?<=[{before}])|^)((?:{sur}|[{single}])[{_HAN}]{{1,2}})(?={after})", re.M
        )
        self._not_names = tuple(run["not_names"])
        self._tags: dict[str, str] | None = None
        self._single, self._compound = surnames()
        self._stop = frozenset(_phi()["name_not_given"])
        self._jieba: Any = None

    def _han_name(self, run: str) -> str | None:
        sur = next((c for c in self._compound if run.startswith(c)), None) or (
            run[0] if run[0] in self._single else None
        )
        if sur is None:
            return None
        rest = run[len(sur) :]
        name = run
        if not 1 <= len(rest) <= 2:
            if self._jieba is None:
                import jieba

                self._jieba = jieba.Tokenizer()
            name = str(next(iter(self._jieba.cut(run, HMM=True)), ""))
            if not len(sur) < len(name) <= len(sur) + 2:
                return None
        return None if any(c in self._stop for c in name[len(sur) :]) else name

    def spans(self, text: str) -> list[tuple[int, int, float]]:
        out = []
        for m in self._zh.finditer(text):
            name = self._han_name(m[1])
            if name:
                out.append((m.start(1), m.start(1) + len(name), 0.9))
        out += [(m.start(1), m.end(1), 0.8) for m in self._en.finditer(text)]
        for m in self._running.finditer(text):
            word = m[1]
            if word.startswith(self._not_names) or any(c in self._stop for c in word[1:]):
                continue
            if self._unknown_or_name(word):
                out.append((m.start(1), m.end(1), 0.5))
        return out

    def _unknown_or_name(self, word: str) -> bool:
        if self._tags is None:
            import jieba.posseg

            self._tags = dict(jieba.posseg.POSTokenizer(jieba.Tokenizer()).word_tag_tab)
        tag = self._tags.get(word)
        return tag is None or tag.startswith("nr")


def recognizers(lang: str) -> list[EntityRecognizer]:
    """Every PHI recognizer for ``lang`` (the Chinese ones also run on English notes)."""
    kinds = (
        NameRecognizer,
        IdCardRecognizer,
        PhoneRecognizer,
        AddressRecognizer,
        DateRecognizer,
        IdentifierRecognizer,
        EmailRecognizer,
    )
    return [k(lang) for k in kinds]
