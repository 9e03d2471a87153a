"""De-identification of zh and en notes: Presidio detection, format-keeping surrogates.

>>> deid = Deidentifier(key=b"secret")
>>> result = deid.deidentify(text, lang="zh", person="P00000001")
>>> result.text, result.replacements

Detection is a Presidio ``AnalyzerEngine`` over blank spaCy pipelines (no model weights)
with the recognizers of ``models.nlp.recognizers``. Replacement is done here rather than by
the anonymizer so that every replacement's offsets, in the input and in the output, are
reported. One ``Deidentifier`` is one document set: it remembers the surrogates it wrote,
so running it over its own output changes nothing (idempotence) even for shifted dates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache

import spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import SpacyNlpEngine

from models.nlp import identifiers, surrogates
from models.nlp.recognizers import recognizers

logger = logging.getLogger(__name__)
LANGS = ("zh", "en")


class BlankSpacyEngine(SpacyNlpEngine):
    """Presidio's spaCy engine on blank pipelines: tokens only, nothing to download."""

    def __init__(self) -> None:
        super().__init__(models=[{"lang_code": lang, "model_name": "blank"} for lang in LANGS])

    def load(self) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self.nlp = {  # type: ignore[assignment]
            "zh": spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}}),
            "en": spacy.blank("en"),
        }


@cache
def analyzer() -> AnalyzerEngine:
    """One analyzer per process with the zh and en PHI recognizers."""
    registry = RecognizerRegistry(supported_languages=list(LANGS))
    for lang in LANGS:
        for rec in recognizers(lang):
            registry.add_recognizer(rec)
    engine = BlankSpacyEngine()
    engine.load()
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=list(LANGS))


@dataclass(frozen=True)
class Replacement:
    """One replaced span: ``start``/``end`` in the input, ``new_*`` in the output."""

    entity_type: str
    start: int
    end: int
    new_start: int
    new_end: int
    score: float


@dataclass(frozen=True)
class DeidResult:
    text: str
    replacements: tuple[Replacement, ...]


def detect(text: str, lang: str) -> list[RecognizerResult]:
    """PHI spans in ``text``: overlaps resolved by score, then length, then position."""
    found = analyzer().analyze(text=text, language=lang)
    found.sort(key=lambda r: (-r.score, -(r.end - r.start), r.start))
    kept: list[RecognizerResult] = []
    for r in found:
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


@dataclass
class Deidentifier:
    """Consistent surrogates for one document set under one secret key."""

    key: bytes
    _emitted: set[str] = field(default_factory=set)

    def surrogate(
        self, entity_type: str, value: str, person: str, *, shift_days: int | None = None
    ) -> str:
        """The surrogate of ``value``; a surrogate this set already wrote is kept as it is.

        Dates move by ``shift_days`` when given (the person's shift of the de-identified
        views, ``governance.person_keys``), else by the keyed offset of ``person``.
        """
        if value in self._emitted:
            return value
        shift = shift_days if shift_days else surrogates.date_offset(self.key, person)
        if entity_type == "NAME":
            out = value if surrogates.is_surrogate_name(value) else surrogates.name(self.key, value)
        elif entity_type == "ID_CARD":
            out = surrogates.id_card(self.key, value, shift)
        elif entity_type == "PHONE":
            out = surrogates.phone(self.key, value)
        elif entity_type == "ADDRESS":
            out = (
                value
                if surrogates.is_surrogate_address(value)
                else surrogates.address(self.key, value)
            )
        elif entity_type == "DATE":
            out = surrogates.shift_date(value, shift)
        else:  # MRN, EMAIL and anything else: same length, hashed
            h = f"{surrogates.digest(self.key, entity_type, value):020d}"
            out = "".join(h[i % 20] if c.isdigit() else c for i, c in enumerate(value))
            if entity_type == "EMAIL":
                out = f"user{h[:6]}@example.org"
        self._emitted.add(out)
        return out

    def deidentify(
        self, text: str, lang: str, person: str = "", *, shift_days: int | None = None
    ) -> DeidResult:
        """``text`` with every PHI span replaced, and the offsets of each replacement.

        ``shift_days``: the person's date shift, when the caller knows it (see
        :meth:`surrogate`); dates and the birth date in a 身份证号 move by it.
        """
        parts: list[str] = []
        reps: list[Replacement] = []
        pos = shift = 0
        for r in detect(text, lang):
            value = text[r.start : r.end]
            new = self.surrogate(r.entity_type, value, person, shift_days=shift_days)
            if new == value:
                continue
            parts.append(text[pos : r.start])
            parts.append(new)
            start = r.start + shift
            reps.append(
                Replacement(r.entity_type, r.start, r.end, start, start + len(new), r.score)
            )
            shift += len(new) - len(value)
            pos = r.end
        parts.append(text[pos:])
        logger.debug("de-identified a note: %d replacements", len(reps))
        return DeidResult("".join(parts), tuple(reps))


def leaks(text: str) -> list[str]:
    """Kinds of direct identifiers still in ``text`` (valid 身份证号, mobile numbers)."""
    from models.nlp.recognizers import ID_RE, MOBILE_RE

    out = ["ID_CARD" for m in ID_RE.finditer(text) if identifiers.is_valid_id(m[0])]
    return out + ["PHONE" for _ in MOBILE_RE.finditer(text)]
