"""Guarded, audited reads of silver for the FHIR API.

Every read is one SELECT over the current version of one silver table (the count of all
matches comes in the same query, as a window), run as the signed-in user through
:meth:`AccessService.query` (the access service the assistant's
:class:`~serving.assistant.tools.DataTools` holds): the policy's row and column rules
apply, a named patient outside the user's scope is refused (``LH-SEC-006``), and every
read or refusal is audited with the patient's keyed pseudonym.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.sessions import Principal
from lakehouse.tables.spec import TableSpec
from serving.assistant.tools import DataTools, purpose_of
from serving.fhir.ids import decode
from serving.fhir.resources import ALL_KINDS, KINDS, VARIANTS, FhirTables, Kind, Resource
from serving.fhir.search import Search, id_where, where_patient
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
        self.tables = FhirTables.of(tools.tables)

    def read(self, who: Principal, kind: Kind, fhir_id: str) -> Resource:
        """The resource of an id (``LH-FHR-003`` when absent or not visible)."""
        for variant in VARIANTS[kind.type]:
            where = id_where(variant, fhir_id)
            if where is None:
                continue
            rows, _ = self._rows(who, variant, where, limit=1)
            if rows:
                return variant.build(rows[0], self.zone)
        raise error(ErrorCode.FHIR_NOT_FOUND, name=kind.type)

    def search(self, who: Principal, searches: list[tuple[Kind, Search]]) -> Page:
        """One page of a search over the kinds of a type (each with its parsed search)."""
        wanted = [(k, s) for k, s in searches if not s.none]
        first = searches[0][1]
        found: list[tuple[Kind, dict[str, Any]]] = []
        total = 0
        for kind, search in wanted:
            where = exp.and_(*search.where) if search.where else None
            if len(wanted) == 1:  # the database pages
                rows, count = self._rows(
                    who, kind, where, limit=search.count, offset=search.offset, total=True
                )
            else:  # each kind's first offset + count rows, merged below
                rows, count = self._rows(
                    who, kind, where, limit=search.offset + search.count, total=True
                )
            found.extend((kind, r) for r in rows)
            total += count or 0
        if len(wanted) > 1:
            found = _merged(found)[first.offset : first.offset + first.count]
        resources = _unique([k.build(r, self.zone) for k, r in found])
        included: list[Resource] = []
        if first.include_patient and found:
            keys = sorted({(r["institution_code"], r["patient_id"]) for _, r in found})
            included = self.patients(who, keys)
        return Page(resources, total if wanted else 0, included)

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
        for kind in ALL_KINDS:
            if kind.clinical and kind.patient_linked:
                rows, _ = self._rows(who, kind, where_patient(inst, pid), limit=EVERYTHING_MAX)
                out.extend(kind.build(r, self.zone) for r in rows)
        return out

    # -- the guarded query path (the FHIR API's and the 4A query services') ------------
    def visible(self, who: Principal, spec: TableSpec, wanted: Iterable[str]) -> list[str]:
        """The ``wanted`` columns of ``spec`` the role may see (a column the policy hides
        is left out; the keys and the patient id always stay, the row filter needs them)."""
        shown = set(self.tools.access.guard.policy.visible_columns(who.role, spec))
        return [
            c for c in dict.fromkeys(wanted) if c in shown or c in spec.keys or c == "patient_id"
        ]

    def fetch(
        self,
        who: Principal,
        query: exp.Select,
        *,
        limit: int,
        offset: int = 0,
        total: bool = False,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of an ordered SELECT run as ``who`` through :meth:`AccessService.query`
        (policy rewrite, patient scope, audit): its rows, and with ``total`` (the SELECT
        carries :func:`with_total`'s column) the count of all matches."""
        query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        rows = self.tools.access.query(
            who, query.sql(dialect="spark"), purpose=purpose_of(who), limit=limit
        )
        out = [dict(r.asDict()) for r in rows]
        count = int(out[0].pop(_TOTAL)) if total and out else (0 if total and not offset else None)
        for r in out:
            r.pop(_TOTAL, None)
        return out, count

    # -- the one query shape -----------------------------------------------------------
    def select(
        self,
        who: Principal,
        kind: Kind,
        where: exp.Expr | None,
        *,
        total: bool = False,
    ) -> exp.Select:
        """The SELECT of ``kind``'s rows matching ``where`` (unordered, unlimited): the
        columns the role may see of those the builder reads (a column the policy hides is
        left out, so its element is), live rows only."""
        spec = kind.table(self.tables)
        names = self.visible(who, spec, [*spec.keys, *kind.columns, *_EXTRA.get(kind.type, ())])
        live = live_rows()
        table = source(spec)
        if kind.group is None:
            cols: list[exp.Expr] = [col(c) for c in names]
        else:
            cols = [col(c) for c in kind.group.by]
            cols += [
                exp.alias_(sqlglot.parse_one(sql, read="spark"), alias)
                for alias, sql in kind.group.aggregates
            ]
            live = exp.and_(live, col(kind.key).is_(exp.null()).not_())
        if total:
            cols.append(total_column())
        query = exp.select(*cols).from_(table)
        query = query.where(exp.and_(where, live) if where is not None else live)
        if kind.group is not None:
            query = query.group_by(*[col(c) for c in kind.group.by])
        return query

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
        spec = kind.table(self.tables)
        query = self.select(who, kind, where, total=total)
        out, count = self.fetch(
            who, query.order_by(*_order(kind, spec.keys)), limit=limit, offset=offset, total=total
        )
        if out and kind.type == "DocumentReference":
            self._note_text(who, out)
        if out and kind.type == "ImagingStudy":
            self._series(who, out)
        return out, count

    def _note_text(self, who: Principal, rows: list[dict[str, Any]]) -> None:
        """Each note's ``text``: the note text where the policy lets the role read it, else
        the de-identified text of the note's current version (``silver.note_deid``) where
        the role may read that table, else none."""
        if any("note_text" in r for r in rows):
            for r in rows:
                r["text"] = r.pop("note_text", None)
            return
        spec = self.tables.note_deid
        keys = exp.or_(*[_key_where(spec.keys, r) for r in rows])
        query = (
            exp.select(*[col(c) for c in (*spec.keys, "source_updated_at", "text_deid")])
            .from_(exp.table_(spec.table_name, db=spec.schema_name, quoted=True))
            .where(exp.and_(keys, col("text_deid").is_(exp.null()).not_()))
        )
        sql = query.sql(dialect="spark")
        try:  # the guard alone (no read, nothing audited): may the role read the table?
            self.tools.access.guard.rewrite(who, sql)
        except LakehouseError:
            return
        found = self.tools.access.query(who, sql, purpose=purpose_of(who), limit=len(rows))
        texts = {
            tuple(d[k] for k in spec.keys): (d["source_updated_at"], d["text_deid"])
            for d in (r.asDict() for r in found)
        }
        for r in rows:
            hit = texts.get(tuple(r[k] for k in spec.keys))
            # Only the de-identified text of this version: a changed note waits for the NLP.
            if hit is not None and hit[0] == r.get("source_updated_at"):
                r["text"], r["text_deid"] = hit[1], True

    def _series(self, who: Principal, rows: list[dict[str, Any]]) -> None:
        """The series of the studies (one guarded read)."""
        spec = self.tables.imaging_series
        parts = ("institution_code", "source_system", "study_instance_uid")
        keys = exp.or_(*[_key_where(parts, r) for r in rows])
        cols = (
            *parts, "series_instance_uid", "patient_id", "modality", "series_description",
            "body_part", "instance_count",
        )  # fmt: skip
        query = (
            exp.select(*[col(c) for c in cols])
            .from_(exp.table_(spec.table_name, db=spec.schema_name, quoted=True))
            .where(keys)
            .order_by(col("series_instance_uid"))
        )
        found = self.tools.access.query(
            who, query.sql(dialect="spark"), purpose=purpose_of(who), limit=EVERYTHING_MAX
        )
        by_study: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for one in found:
            d = one.asDict()
            by_study.setdefault(tuple(d[k] for k in parts), []).append(d)
        for r in rows:
            r["series"] = by_study.get(tuple(r[k] for k in parts), [])


def live_rows() -> exp.Expr:
    """Rows not deleted at their source."""
    return exp.or_(col("is_deleted").is_(exp.null()), exp.not_(col("is_deleted")))


def source(spec: TableSpec) -> exp.Table:
    """The quoted table of a spec (names come from specs, never from callers)."""
    return exp.table_(spec.table_name, db=spec.schema_name, quoted=True)


def total_column() -> exp.Expr:
    """The count of all matches, as a window column :meth:`FhirStore.fetch` takes off."""
    return exp.alias_(sqlglot.parse_one("COUNT(*) OVER ()", read="spark"), _TOTAL)


#: Columns a builder needs beyond its kind's own (the version a note's text belongs to).
_EXTRA = {"DocumentReference": ("source_updated_at",)}


def _key_where(columns: tuple[str, ...], row: dict[str, Any]) -> exp.Expr:
    return exp.and_(*[col(c).eq(string(row[c])) for c in columns])


def _merged(found: list[tuple[Kind, dict[str, Any]]]) -> list[tuple[Kind, dict[str, Any]]]:
    """Rows of several kinds in one total order: date descending (none last), then the kinds'
    order and each kind's own order (a stable sort of rows each kind returned ordered)."""

    def key(item: tuple[Kind, dict[str, Any]]) -> tuple[bool, float]:
        kind, row = item
        when = row.get(_date_alias(kind)) if kind.date else None
        return (when is None, -when.timestamp() if isinstance(when, datetime) else 0.0)

    return sorted(found, key=key)


def _date_alias(kind: Kind) -> str:
    """The column of the rows holding the kind's date (a grouped kind's aggregate)."""
    if kind.group is not None:
        return "effective_at"
    return kind.date or ""


def _order(kind: Kind, keys: tuple[str, ...]) -> list[exp.Ordered]:
    """Newest first for clinical rows; patients by key, newest source version first. The
    table keys end the order, so it is total and pages do not overlap."""
    first: list[exp.Ordered] = []
    if kind.group is not None:
        date = sqlglot.parse_one(f"MIN({kind.date})", read="spark")
        return [
            exp.Ordered(this=date, desc=True, nulls_first=False),
            *(exp.Ordered(this=col(k), nulls_first=True) for k in kind.group.by),
        ]
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
