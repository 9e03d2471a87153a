"""Vocabulary ids, the code-system registry (FHIR URIs, HL7 names, CDA OIDs) and concept ids.

Vocabulary ids: ``ICD10`` (the Chinese national clinical edition, 国家临床版, as HIS, CDA,
FHIR and HL7 sources send it: E11.900), ``ICD10CM``, ``ICD9CM3``, ``LOINC``, ``ATC``, ``UCUM``,
``GB2261`` (sex, GB/T 2261.1) and ``LOCAL:<institution>:<LAB|DX|DRUG|PROC>`` for a site's own codes
(PROC: procedure and examination item codes, e.g. the HIS order item ``CT``).

Concept ids of codes not loaded from an Athena bundle are derived, deterministically, from
(vocabulary_id, concept_code): ``2_000_000_000 + the first 60 bits of SHA-256("vocab|code")``,
i.e. in OMOP's local range (>= 2,000,000,000) and 64-bit (``concept_id`` is a long here).
:func:`local_concept_id` (Python) and :func:`local_concept_id_col` (Spark) agree bit for bit.
"""

from __future__ import annotations

import csv
import hashlib
import re
from functools import cache
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error

DATA = Path(__file__).resolve().parent / "data"
LOCAL_ID_BASE = 2_000_000_000
OPEN_END = "2099-12-31"

ICD10 = "ICD10"
ICD10CM = "ICD10CM"
ICD9CM3 = "ICD9CM3"
LOINC = "LOINC"
ATC = "ATC"
UCUM = "UCUM"
GB2261 = "GB2261"
STANDARD_VOCABULARIES = (ICD10, ICD10CM, ICD9CM3, LOINC, ATC, UCUM, GB2261)
LOCAL_KINDS = ("LAB", "DX", "DRUG", "PROC")
#: Vocabulary a local code of each kind maps to.
KIND_TARGET = {"LAB": LOINC, "DX": ICD10, "DRUG": ATC, "PROC": ICD9CM3}
#: Kind of local code each standard vocabulary is the target of.
TARGET_KIND = {v: k for k, v in KIND_TARGET.items()} | {ICD10CM: "DX"}

_LOCAL = re.compile(r"^LOCAL:([A-Za-z0-9_.-]+):(LAB|DX|DRUG|PROC)$")
#: Site-local system names like "A0002-JY" (the CSV members' code-system labels).
_SITE_SYSTEM = re.compile(r"^([A-Za-z0-9]+)-(ZD|JY|YP)$")
_SITE_KIND = {"ZD": "DX", "JY": "LAB", "YP": "DRUG"}


def local_vocabulary(institution: str, kind: str) -> str:
    """``LOCAL:<institution>:<kind>``; ``LH-VOC-009`` for a kind not in LAB, DX, DRUG, PROC."""
    vocab = f"LOCAL:{institution}:{kind}"
    if not _LOCAL.match(vocab):
        raise error(
            ErrorCode.VOCAB_UNKNOWN, name=vocab, reason="kind must be LAB, DX, DRUG or PROC"
        )
    return vocab


def parse_local(vocabulary_id: str) -> tuple[str, str] | None:
    """(institution, kind) of a ``LOCAL:`` vocabulary id, else None."""
    m = _LOCAL.match(vocabulary_id)
    return (m.group(1), m.group(2)) if m else None


def check_vocabulary_id(vocabulary_id: str) -> str:
    """The id itself when it is one of ours; ``LH-VOC-009`` otherwise."""
    if vocabulary_id in STANDARD_VOCABULARIES or _LOCAL.match(vocabulary_id):
        return vocabulary_id
    raise error(
        ErrorCode.VOCAB_UNKNOWN, name=vocabulary_id, reason="not a standard or LOCAL: vocabulary"
    )


def local_concept_id(vocabulary_id: str, concept_code: str) -> int:
    """Deterministic local concept id of a code (see the module docstring)."""
    digest = hashlib.sha256(f"{vocabulary_id}|{concept_code}".encode()).hexdigest()
    return LOCAL_ID_BASE + int(digest[:15], 16)


def local_concept_id_col(vocabulary_id: Column, concept_code: Column) -> Column:
    """:func:`local_concept_id` as a Spark expression (no UDF)."""
    digest = F.sha2(F.concat_ws("|", vocabulary_id, concept_code), 256)
    return (F.conv(F.substring(digest, 1, 15), 16, 10).cast("long") + F.lit(LOCAL_ID_BASE)).cast(
        "long"
    )


@cache
def code_systems() -> dict[str, str]:
    """The registry in ``data/code_systems.csv``: system (lower case) -> vocabulary id
    (possibly with an ``{institution}`` placeholder)."""
    with (DATA / "code_systems.csv").open(encoding="utf-8", newline="") as fh:
        return {row["system"].strip().lower(): row["vocabulary_id"] for row in csv.DictReader(fh)}


def vocabulary_for(system: str | None, *, institution: str | None = None) -> str | None:
    """Vocabulary id of a FHIR system URI, HL7 v2 coding-system name or CDA codeSystem OID.

    ``99LIS``-style local systems need the sending ``institution``; ``A0002-JY``-style site
    system labels carry it. None when the system is unknown (or needs an institution and
    none is given).
    """
    if system is None:
        return None
    key = system.strip()
    if _LOCAL.match(key):
        return key
    if key in STANDARD_VOCABULARIES:
        return key
    found = code_systems().get(key.lower())
    if found is not None:
        if "{institution}" in found:
            return found.replace("{institution}", institution) if institution else None
        return found
    m = _SITE_SYSTEM.match(key)
    if m:
        return f"LOCAL:{m.group(1)}:{_SITE_KIND[m.group(2)]}"
    return None


def vocabulary_of(system: Column, institution: Column | None = None) -> Column:
    """:func:`vocabulary_for` as a Spark expression over a column of systems (no UDF)."""
    key = F.trim(system)
    pairs: list[Column] = []
    for k, v in sorted(code_systems().items()):
        pairs += [F.lit(k), F.lit(v)]
    registry = F.create_map(*pairs)
    found = registry[F.lower(key)]
    inst = institution if institution is not None else F.lit(None).cast("string")
    site = F.regexp_extract(key, _SITE_SYSTEM.pattern, 1)
    site_kind = F.regexp_extract(key, _SITE_SYSTEM.pattern, 2)
    kind = (
        F.when(site_kind == "ZD", F.lit("DX"))
        .when(site_kind == "JY", F.lit("LAB"))
        .when(site_kind == "YP", F.lit("DRUG"))
    )
    return (
        F.when(key.rlike(_LOCAL.pattern), key)
        .when(key.isin(*STANDARD_VOCABULARIES), key)
        .when(
            found.contains("{institution}"),
            F.when(inst.isNotNull(), F.replace(found, F.lit("{institution}"), inst)),
        )
        .when(found.isNotNull(), found)
        .when(site != "", F.concat(F.lit("LOCAL:"), site, F.lit(":"), kind))
    )
