"""Guarded, audited reads of silver for the FHIR API.

Every read is one SELECT over the current version of one silver table (the count of all
matches comes in the same query, as a window), run as the signed-in user through
:meth:`AccessService.query` (the access service the assistant's
:class:`~serving.assistant.tools.DataTools` holds): the policy's row and column rules
apply, a named patient outside the user's scope is refused (``LH-SEC-006``), and every
read or refusal is audited with the patient's keyed pseudonym.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.sessions import Principal
from serving.assistant.tools import PURPOSE, DataTools
from serving.fhir.ids import decode
from serving.fhir.resources import KINDS, Kind, Resource
from serving.fhir.search import Search, where_patient
from serving.sql import col, string

EVERYTHING_MAX = 1000  # resources of one type in a $everything answer
_TOTAL = "_fhir_total"


@dataclass(frozen=True)
class Page:
    """One page of a search: resources, the total match count, included patients."""

    resources: list[Resource]
    total: int | None
    included: list[Resource]


class FhirStore:
    """Reads FHIR resources for one service process."""

    def __init__(self, tools: DataTools, zone: ZoneInfo) -> None:
        self.tools, self.zone = tools, zone

    def read(self, who: Principal, kind: Kind, fhir_id: str) -> Resource:
        """The resource of an id (``LH-FHR-003`` when absent or not visible)."""
        key = decode(fhir_id, 3 if kind.clinical else 2)
        if key is None:
            raise error(ErrorCode.FHIR_NOT_FOUND, name=kind.type)
        where: exp.Expr
        if kind.clinical:
            cols = ("institution_code", "source_system", kind.key)
            where = exp.and_(*[col(c).eq(string(v)) for c, v in zip(cols, key, strict=True)])
        else:
            where = where_patient(key[0], key[1])
        rows, _ = self._rows(who, kind, where, limit=1)
        if not rows:
            raise error(ErrorCode.FHIR_NOT_FOUND, name=kind.type)
        return kind.build(rows[0], self.zone)

    def search(self, who: Principal, kind: Kind, search: Search) -> Page:
        where = exp.and_(*search.where) if search.where else None
        rows, total = self._rows(
            who, kind, where, limit=search.count, offset=search.offset, total=True
        )
        resources = _unique([kind.build(r, self.zone) for r in rows])
        included: list[Resource] = []
        if search.include_patient and rows:
            keys = sorted({(r["institution_code"], r["patient_id"]) for r in rows})
            included = self.patients(who, keys)
        return Page(resources, total, included)

    def patients(self, who: Principal, keys: list[tuple[str, str]]) -> list[Resource]:
        """The Patient resources of some patient keys (one guarded read)."""
        kind = KINDS["Patient"]
        where = exp.or_(*[where_patient(i, p) for i, p in keys])
        rows, _ = self._rows(who, kind, where, limit=len(keys) * 8)
        return _unique([kind.build(r, self.zone) for r in rows])

    def everything(self, who: Principal, fhir_id: str) -> list[Resource]:
        """The patient and every resource of theirs this server builds (each type capped at
        :data:`EVERYTHING_MAX`)."""
        patient = self.read(who, KINDS["Patient"], fhir_id)
        inst, pid = decode(fhir_id, 2) or ("", "")
        out = [patient]
        for kind in KINDS.values():
            if kind.clinical:
                rows, _ = self._rows(who, kind, where_patient(inst, pid), limit=EVERYTHING_MAX)
                out.extend(kind.build(r, self.zone) for r in rows)
        return out

    # -- the one query shape -----------------------------------------------------------
    def _rows(
        self,
        who: Principal,
        kind: Kind,
        where: exp.Expr | None,
        *,
        limit: int,
        offset: int = 0,
        total: bool = False,
    ) -> tuple[list[dict[str, Any]], int | None]:
        spec = kind.table(self.tools.tables)
        cols: list[exp.Expr] = [col(c) for c in dict.fromkeys([*spec.keys, *kind.columns])]
        if total:
            cols.append(exp.alias_(sqlglot.parse_one("COUNT(*) OVER ()", read="spark"), _TOTAL))
        live = exp.or_(col("is_deleted").is_(exp.null()), exp.not_(col("is_deleted")))
        table = exp.table_(spec.table_name, db=spec.schema_name, quoted=True)
        query = exp.select(*cols).from_(table)
        query = query.where(exp.and_(where, live) if where is not None else live)
        query = query.order_by(*_order(kind, spec.keys)).limit(limit)
        if offset:
            query = query.offset(offset)
        rows = self.tools.access.query(
            who, query.sql(dialect="spark"), purpose=PURPOSE, limit=limit
        )
        out = [dict(r.asDict()) for r in rows]
        count = int(out[0].pop(_TOTAL)) if total and out else (0 if total and not offset else None)
        for r in out:
            r.pop(_TOTAL, None)
        return out, count


def _order(kind: Kind, keys: tuple[str, ...]) -> list[exp.Ordered]:
    """Newest first for clinical rows; patients by key, newest source version first. The
    table keys end the order, so it is total and pages do not overlap."""
    first: list[exp.Ordered] = []
    if kind.clinical and kind.date:
        first.append(exp.Ordered(this=col(kind.date), desc=True, nulls_first=False))
    if not kind.clinical:
        first += [
            exp.Ordered(this=col("institution_code"), nulls_first=True),
            exp.Ordered(this=col("patient_id"), nulls_first=True),
            exp.Ordered(this=col("source_updated_at"), desc=True, nulls_first=False),
        ]
    return [*first, *(exp.Ordered(this=col(k), nulls_first=True) for k in keys)]


def _unique(resources: list[Resource]) -> list[Resource]:
    """First resource of each id (a patient sent by several source systems)."""
    seen: set[str] = set()
    out = []
    for r in resources:
        if r["id"] not in seen:
            seen.add(r["id"])
            out.append(r)
    return out
