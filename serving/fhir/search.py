"""FHIR search parameters to SQL conditions (sqlglot expressions, never pasted text).

Served: ``patient`` / ``subject`` (a Patient id or ``Patient/<id>``), ``code``
(``system|code``, ``code`` or a comma list of either), ``date`` (``birthdate`` for Patient)
with the prefixes ``eq ge gt le lt`` and year, month, day or dateTime precision (repeat it
for a range), ``_id``, ``_count``, ``_offset`` (the next-page links) and
``_include=<Type>:patient``. Any other parameter is refused (``LH-FHR-002``): a filter the
server silently dropped would widen the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlglot import exp

from lakehouse.errors import ErrorCode, error
from serving.fhir.ids import decode
from serving.fhir.resources import VOCABULARIES, Kind
from serving.sql import col, string

DEFAULT_COUNT = 20
MAX_COUNT = 100

_DATE = re.compile(
    r"(?P<prefix>eq|ge|gt|le|lt)?"
    r"(?P<value>\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?)"
)
_NAME = re.compile(r"_?[a-z][a-z\-]{0,39}(:[a-z]+)?")


@dataclass
class Search:
    """A parsed search: SQL condition, paging and what to include."""

    where: list[exp.Expr] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    include_patient: bool = False
    patients: list[tuple[str, str]] = field(default_factory=list)
    #: True when a parameter rules this kind out (another Observation category).
    none: bool = False


def invalid(name: str, reason: str) -> Exception:
    """``LH-FHR-002``; a parameter name that does not look like one is not echoed."""
    shown = name if _NAME.fullmatch(name) else "(not shown)"
    return error(ErrorCode.FHIR_SEARCH_INVALID, name=shown, reason=reason)


def patient_key(name: str, value: str) -> tuple[str, str]:
    """(institution, patient id) of a ``Patient/<id>`` or ``<id>`` reference."""
    ref = value.removeprefix("Patient/")
    key = decode(ref, 2)
    if key is None:
        raise invalid(name, "not a Patient id of this server")
    return key[0], key[1]


def where_patient(institution: str, patient: str) -> exp.Expr:
    return exp.and_(
        col("institution_code").eq(string(institution)), col("patient_id").eq(string(patient))
    )


def id_where(kind: Kind, fhir_id: str) -> exp.Expr | None:
    """The condition selecting the row of an id of ``kind`` (None: not one of its ids)."""
    key = decode(fhir_id, kind.width)
    if key is None:
        return None
    if not kind.clinical:
        return where_patient(key[0], key[1])
    if kind.tag:
        if key[2] != kind.tag:
            return None
        key = (key[0], key[1], key[3])
    parts = ("institution_code", "source_system", kind.key)
    return exp.and_(*[col(c).eq(string(v)) for c, v in zip(parts, key, strict=True)])


def parse(kind: Kind, params: list[tuple[str, str]], zone: ZoneInfo) -> Search:
    """The search ``params`` (repeated names kept) ask for on ``kind``."""
    out = Search()
    for name, value in params:
        if name == "_count":
            if not value.isdigit() or not 0 < int(value) <= MAX_COUNT:
                raise invalid(name, f"a whole number from 1 to {MAX_COUNT}")
            out.count = int(value)
        elif name == "_offset":
            if not value.isdigit():
                raise invalid(name, "a whole number")
            out.offset = int(value)
        elif name == "_include":
            served = (f"{kind.type}:patient", f"{kind.type}:subject")
            if not kind.patient_linked or not kind.clinical or value not in served:
                raise invalid(name, f"only {kind.type}:patient is served")
            out.include_patient = True
        elif name == "_format":
            if value not in ("json", "application/fhir+json", "application/json"):
                raise invalid(name, "only JSON is served")
        elif name in ("patient", "subject") and kind.patient_linked and kind.clinical:
            inst, pid = patient_key(name, value)
            out.patients.append((inst, pid))
            out.where.append(where_patient(inst, pid))
        elif name == "_id":
            out.where.append(_ids(kind, value))
        elif name == "category" and kind.category:
            codes = {t.rpartition("|")[2] for t in value.split(",")}
            if not all(codes):
                raise invalid(name, "a category code, or system|code")
            out.none = out.none or kind.category not in codes
        elif name == "code" and kind.codes:
            out.where.append(_codes(kind, value))
        elif name == kind.date_param and kind.date:
            out.where.append(_date(kind.date, name, value, zone))
        else:
            raise invalid(name, f"not a search parameter of {kind.type} on this server")
    return out


def _ids(kind: Kind, value: str) -> exp.Expr:
    return exp.or_(*[id_where(kind, one) or exp.false() for one in value.split(",")])


def _codes(kind: Kind, value: str) -> exp.Expr:
    ors: list[exp.Expr] = []
    for token in value.split(","):
        system, bar, code = token.rpartition("|")
        if not code:
            raise invalid("code", "a code, or system|code")
        if bar and system:
            vocab = VOCABULARIES.get(system)
            # A code system this server does not hold (or a kind of local codes): no match.
            if vocab is None or all(not v for v, _ in kind.codes):
                ors.append(exp.false())
                continue
            for vcol, ccol in kind.codes:
                if not vcol:  # a local code without a vocabulary column: code only
                    continue
                ors.append(exp.and_(col(vcol).eq(string(vocab)), col(ccol).eq(string(code))))
        else:
            ors.extend(col(ccol).eq(string(code)) for _, ccol in kind.codes)
    return exp.paren(exp.or_(*ors))


def _date(column: str, name: str, value: str, zone: ZoneInfo) -> exp.Expr:
    m = _DATE.fullmatch(value)
    if m is None:
        raise invalid(name, "[eq|ge|gt|le|lt]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]]")
    try:
        lo, hi = _interval(m["value"], zone)
    except ValueError as exc:
        raise invalid(name, "not a calendar date or time") from exc
    prefix = m["prefix"] or "eq"
    c = col(column)

    def ts(t: datetime) -> exp.Expr:
        return exp.cast(string(t.isoformat(sep=" ")), "timestamp")

    if prefix == "eq":
        return exp.and_(c >= ts(lo), c < ts(hi))
    return {"ge": c >= ts(lo), "gt": c >= ts(hi), "lt": c < ts(lo), "le": c < ts(hi)}[prefix]


def _interval(text: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The [start, end) a date or dateTime of the given precision covers, local time."""
    if "T" not in text:
        parts = [int(p) for p in text.split("-")]
        if len(parts) == 1:
            return datetime(parts[0], 1, 1), datetime(parts[0] + 1, 1, 1)
        if len(parts) == 2:
            y, mo = parts
            start = datetime(y, mo, 1)
            return start, datetime(y + mo // 12, mo % 12 + 1, 1)
        start = datetime(parts[0], parts[1], parts[2])
        return start, start + timedelta(days=1)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone).replace(tzinfo=None)
    step = timedelta(seconds=1) if re.search(r"T\d{2}:\d{2}:", text) else timedelta(minutes=1)
    if "." in text:
        step = timedelta(microseconds=1)
    return moment, moment + step
