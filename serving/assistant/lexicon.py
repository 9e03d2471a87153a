"""Names of tests, drugs and diagnoses, in Chinese and English, from the terminology service.

The grounded planner finds the concepts a question names by longest match against every
name and synonym of the current LOINC, ATC and ICD-10 concepts in ``vocab.concept`` and
``vocab.concept_synonym`` (糖化血红蛋白, HbA1c and "Hemoglobin A1c" all name LOINC 4548-4).
Vocabularies are reference data without patient rows, so they are read directly, once, when
the service starts, bounded by ``serve.lexicon_max_terms``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, error
from lakehouse.tables.vocab.concepts import CONCEPT, CONCEPT_SYNONYM
from lakehouse.terminology import ATC, ICD10, LOINC

#: What each vocabulary names in a question.
KIND_BY_VOCABULARY = {LOINC: "lab", ATC: "drug", ICD10: "diagnosis"}
_LATIN = re.compile(r"[0-9a-z]")
#: A Han character (CJK unified ideographs and extension A): the planner's language test too.
CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class Concept:
    """A standard concept a question can name."""

    vocabulary: str
    code: str
    name_en: str
    name_zh: str

    @property
    def kind(self) -> str:
        return KIND_BY_VOCABULARY[self.vocabulary]

    def name(self, lang: str) -> str:
        return (self.name_zh if lang == "zh" else self.name_en) or self.name_en or self.code


@dataclass(frozen=True)
class Mention:
    """Where a question names a concept."""

    concept: Concept
    start: int
    end: int


@dataclass
class Lexicon:
    """Lower-cased names -> concepts, matched longest first."""

    terms: dict[str, set[Concept]] = field(default_factory=dict)
    codes: dict[tuple[str, str], Concept] = field(default_factory=dict)
    longest: int = 0

    def concept(self, vocabulary: str | None, code: str | None) -> Concept | None:
        """The concept of a standard code (to name a record's test or drug in either language)."""
        return self.codes.get((vocabulary or "", code or ""))

    def add(self, name: str | None, concept: Concept) -> None:
        term = " ".join((name or "").lower().split())
        # One character names a concept only in Chinese (钾, 钠, 钙: potassium, sodium,
        # calcium); a single Latin letter or digit is too ambiguous.
        if len(term) < 2 and not CJK.match(term):
            return
        self.terms.setdefault(term, set()).add(concept)
        self.longest = max(self.longest, len(term))

    def find(self, text: str) -> list[Mention]:
        """Non-overlapping mentions, longest match at each position, left to right."""
        low, i = text.lower(), 0
        out: list[Mention] = []
        while i < len(low):
            for n in range(min(self.longest, len(low) - i), 0, -1):
                concepts = self.terms.get(low[i : i + n])
                if concepts and _bounded(low, i, i + n):
                    out.extend(Mention(c, i, i + n) for c in sorted(concepts, key=_order))
                    i += n
                    break
            else:
                i += 1
        return out


def _order(c: Concept) -> tuple[str, str]:
    return (c.vocabulary, c.code)


def _bounded(text: str, start: int, end: int) -> bool:
    """A Latin term must not be part of a longer Latin word or number (GLU in GLUT)."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if _LATIN.match(text[start]) and _LATIN.match(before):
        return False
    return not (_LATIN.match(text[end - 1]) and _LATIN.match(after))


def load_lexicon(
    spark: SparkSession,
    *,
    max_terms: int,
    concept_table: str = CONCEPT.name,
    synonym_table: str = CONCEPT_SYNONYM.name,
) -> Lexicon:
    """The lexicon of the current (valid) LOINC, ATC and ICD-10 concepts and synonyms
    (``LH-TBL-007`` when the vocabularies were never loaded)."""
    for table in (concept_table, synonym_table):
        if not spark.catalog.tableExists(table):
            raise error(ErrorCode.TABLE_NOT_FOUND, table=table)
    vocabularies = ", ".join(f"'{v}'" for v in KIND_BY_VOCABULARY)
    rows = spark.sql(
        f"""SELECT c.vocabulary_id, c.concept_code, c.concept_name, c.concept_name_zh,
                   s.concept_synonym_name
            FROM {concept_table} c LEFT JOIN {synonym_table} s ON c.concept_id = s.concept_id
            WHERE c.vocabulary_id IN ({vocabularies}) AND c.invalid_reason IS NULL"""  # noqa: S608
    ).limit(max_terms)
    lex = Lexicon()
    for r in rows.toLocalIterator():
        long_name = r["concept_name"] or ""
        short = long_name.split(",")[0].strip()  # LOINC long common name: component first
        concept = Concept(r["vocabulary_id"], r["concept_code"], short, r["concept_name_zh"] or "")
        for name in (long_name, short, r["concept_name_zh"], r["concept_synonym_name"]):
            lex.add(name, concept)
        lex.add(r["concept_code"], concept)
        lex.codes[(concept.vocabulary, concept.code)] = concept
    return lex
