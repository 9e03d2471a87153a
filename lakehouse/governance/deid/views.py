"""De-identified views ``deid.<layer>_<table>``: one per TableSpec, planned from its PHI tags.

:func:`plan_view` decides, column by column, what the view shows (the policy's rule for the
column's tag); :func:`view_sql` renders the ``CREATE OR REPLACE VIEW``. The view joins
``governance.person_keys`` on the spec's ``person_key``: the person column becomes the
person's token, dates move by the person's shift and other identifiers become HMAC-SHA256
under the person's identifier key, computed in SQL from the stored HMAC pads. The view's
text therefore names tables and columns only; no key is ever in it.

A free-text column without a de-identified counterpart in its own table takes it from the
table's *companion* ``<table>_deid`` (``silver.note`` -> ``silver.note_deid``, written by the
NLP job) when the companion has the same merge keys: the view ``LEFT JOIN``s it on those keys
(and on the source's ``sequence_by`` column when both have it, so the text shown is the
de-identification of the note's current version, else null until the NLP job reruns).

:func:`deid_spec` describes a view as a :class:`TableSpec` (no PHI tags: nothing in it is
direct PHI), so the SQL guard can resolve analysts' queries against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from pyspark.sql import SparkSession
from pyspark.sql.types import (
    DataType,
    DateType,
    IntegerType,
    NumericType,
    StringType,
    TimestampNTZType,
    TimestampType,
)

from lakehouse.governance.deid.policy import DeidPolicy, Rule
from lakehouse.tables.governance.person_keys import PERSON_KEYS
from lakehouse.tables.spec import Phi, TableSpec, column

SOURCE_PROPERTY = "lakehouse.deid.source"
POLICY_PROPERTY = "lakehouse.deid.policy_version"
_INTEGRAL = ("ByteType", "ShortType", "IntegerType", "LongType")


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class ColumnPlan:
    """One column of a view: its SQL over ``t`` (source) and ``k`` (person keys)."""

    name: str
    source: str
    transform: str
    sql: str
    data_type: DataType
    comment: str
    quasi: bool = False


@dataclass(frozen=True)
class ViewPlan:
    """What the view of one source table shows, and what it leaves out (and why)."""

    source: TableSpec
    view: str
    columns: tuple[ColumnPlan, ...]
    dropped: tuple[tuple[str, str], ...]
    person_column: str | None
    policy_version: int
    #: Table the de-identified text of free-text columns comes from (alias ``d``), and the
    #: columns it is joined on (equal keys; the sequence column null-safe).
    companion: str | None = None
    companion_on: tuple[str, ...] = ()
    companion_sequence: str | None = None

    @property
    def joins_person_keys(self) -> bool:
        return any(c.transform in ("token", "shift") for c in self.columns)

    @property
    def quasi_identifiers(self) -> list[str]:
        return [c.name for c in self.columns if c.quasi]

    def column(self, name: str) -> ColumnPlan:
        return next(c for c in self.columns if c.name == name)


def _describe(rule: Rule) -> str:
    return {
        "keep": "kept",
        "token": "keyed token, stable per person",
        "shift": "shifted by the person's secret date shift",
        "year": f"year only, ages of {rule.cap} and over capped" if rule.cap else "year only",
        "age_band": f"{rule.band}-year bands, {rule.cap}+ capped" if rule.cap else "bands",
        "prefix": f"first {rule.length} characters",
        "regex": "coarse part only (province/city)",
        "deidentified": "de-identified text",
    }.get(rule.transform, rule.transform)


def _year(expr: str, rule: Rule) -> str:
    if rule.cap is None:
        return expr
    now = "year(current_date())"
    return f"CASE WHEN {now} - {expr} >= {rule.cap} THEN {now} - {rule.cap} ELSE {expr} END"


def _token_sql(col: str) -> str:
    """HMAC-SHA256(person identifier key, value) from the stored pads: no key in the text."""
    value = f"encode(CAST({col} AS STRING), 'UTF-8')"
    inner = f"unhex(sha2(concat(k.id_ipad, {value}), 256))"
    return f"sha2(concat(k.id_opad, {inner}), 256)"


def companion_name(source: str) -> str:
    """``silver.note`` -> ``silver.note_deid``: where a table's de-identified text lives."""
    return f"{source}_deid"


def _companion_counterparts(
    spec: TableSpec, companion: TableSpec | None, policy: DeidPolicy, taken: set[str]
) -> dict[str, str]:
    """Free-text columns of ``spec`` (not in ``taken``) -> their column in ``companion``.

    ``<column>_deid`` first; a generic pattern without ``{column}`` (``text_deid``) only for
    a column named ``text`` or ``*_text``, and once: a title never shows the whole text.
    """
    if companion is None or not spec.keys or tuple(companion.keys) != tuple(spec.keys):
        return {}
    their_phi, theirs = companion.phi_columns, set(companion.column_names)
    out: dict[str, str] = {}
    for name, tag in spec.phi_columns.items():
        if tag is not Phi.FREE_TEXT or name in taken:
            continue
        for pattern in policy.counterparts:
            other = pattern.format(column=name)
            generic = "{column}" not in pattern
            if generic and not (name == "text" or name.endswith("_text")):
                continue
            if other in theirs and other not in their_phi and other not in out.values():
                out[name] = other
                break
    return out


def plan_view(
    spec: TableSpec, policy: DeidPolicy, companions: Mapping[str, TableSpec] | None = None
) -> ViewPlan:
    """The view of ``spec`` under ``policy`` (pure: no Spark).

    ``companions``: specs by name, where ``<table>_deid`` is looked up for free-text columns
    without a counterpart in ``spec`` itself.
    """
    phi, names = spec.phi_columns, set(spec.column_names)
    person = spec.person_key
    counterparts: dict[str, str] = {}
    for name, tag in phi.items():
        if tag is Phi.FREE_TEXT:
            for pattern in policy.counterparts:
                other = pattern.format(column=name)
                if other != name and other in names and other not in phi:
                    counterparts[name] = other
                    break
    used = set(counterparts.values())
    companion = (companions or {}).get(companion_name(spec.name))
    joined = _companion_counterparts(spec, companion, policy, set(counterparts))
    out: list[ColumnPlan] = []
    dropped: list[tuple[str, str]] = []
    for field in spec.columns:
        name, dtype = field.name, field.dataType
        comment = str(field.metadata.get("comment", ""))
        t = f"t.{_q(name)}"
        if name in used:
            dropped.append((name, f"shown as {_counterpart_of(counterparts, name)}"))
            continue
        if name == person:
            out.append(
                ColumnPlan(name, name, "token", "k.token", StringType(),
                           f"{comment} [de-identified: the person's keyed token]")
            )  # fmt: skip
            continue
        if name not in phi:
            out.append(ColumnPlan(name, name, "keep", t, dtype, comment))
            continue
        rule = policy.rule(phi[name], name)
        note = f"{comment} [de-identified: {_describe(rule)}]"
        sql: str | None = None
        out_type: DataType = StringType()
        reason = "dropped by the policy"
        tf = rule.transform
        if tf == "keep":
            sql, out_type = t, dtype
        elif tf == "token":
            if person:
                sql = _token_sql(t)
            else:
                reason = "no person key to key its token"
        elif tf == "shift":
            if not person:
                reason = "no person key to shift by"
            elif isinstance(dtype, DateType):
                sql, out_type = f"date_add({t}, k.shift_days)", dtype
            elif isinstance(dtype, TimestampType | TimestampNTZType):
                sql, out_type = f"timestampadd(DAY, k.shift_days, {t})", dtype
            else:
                reason = f"type {dtype.simpleString()} cannot be shifted"
        elif tf == "year":
            if isinstance(dtype, DateType | TimestampType | TimestampNTZType):
                sql, out_type = _year(f"year({t})", rule), IntegerType()
            elif type(dtype).__name__ in _INTEGRAL:
                sql, out_type = _year(f"CAST({t} AS INT)", rule), IntegerType()
            else:
                reason = f"type {dtype.simpleString()} has no year"
        elif tf == "age_band":
            if isinstance(dtype, NumericType):
                band, cap = rule.band or 5, rule.cap
                low = f"CAST(floor({t} / {band}) * {band} AS INT)"
                label = f"concat({low}, '-', {low} + {band - 1})"
                top = f"WHEN {t} >= {cap} THEN '{cap}+' " if cap else ""
                sql = f"CASE WHEN {t} IS NULL THEN NULL {top}ELSE {label} END"
            else:
                reason = f"type {dtype.simpleString()} is not a number"
        elif tf == "prefix":
            sql = f"nullif(substring(CAST({t} AS STRING), 1, {rule.length}), '')"
        elif tf == "regex":
            assert rule.pattern is not None
            sql = f"nullif(regexp_extract(CAST({t} AS STRING), {_lit(rule.pattern)}, 0), '')"
        elif tf == "deidentified":
            if name in counterparts:
                sql, out_type = f"t.{_q(counterparts[name])}", dtype
            elif name in joined:
                sql, out_type = f"d.{_q(joined[name])}", dtype
                note = f"{comment} [de-identified: {companion_name(spec.name)}.{joined[name]}]"
            else:
                reason = "no de-identified counterpart column"
        if sql is None:
            dropped.append((name, reason))
            continue
        out.append(ColumnPlan(name, name, tf, sql, out_type, note, rule.is_quasi))
    view = policy.view_name(spec.name)
    plan = ViewPlan(spec, view, tuple(out), tuple(dropped), person, policy.version)
    if companion is not None and any(c.sql.startswith("d.") for c in out):
        seq = spec.sequence_by
        same_seq = seq if seq and seq in companion.column_names else None
        plan = replace(
            plan,
            companion=companion.name,
            companion_on=tuple(spec.keys),
            companion_sequence=same_seq,
        )
    return plan


def _counterpart_of(counterparts: dict[str, str], name: str) -> str:
    return next(src for src, other in counterparts.items() if other == name)


def _name(table: str) -> str:
    return ".".join(_q(part) for part in table.split("."))


def select_sql(
    plan: ViewPlan,
    *,
    source: str | None = None,
    person_table: str = PERSON_KEYS.name,
    companion: str | None = None,
) -> str:
    """The view's query (over ``source``, default the plan's table): names only.

    Over another ``source`` the companion is joined only when ``companion`` names its
    stand-in; otherwise the de-identified text is null (same columns and types).
    """
    if source is not None and plan.companion is not None:
        plan = replace(plan, companion=companion) if companion else without_companion(plan)
    select = ", ".join(f"{c.sql} AS {_q(c.name)}" for c in plan.columns)
    src = _name(source or plan.source.name)
    query = f"SELECT {select} FROM {src} AS t"  # noqa: S608 - quoted names, escaped literals
    if plan.joins_person_keys:
        assert plan.person_column is not None
        query += (
            f" LEFT JOIN {_name(person_table)} AS k"
            f" ON k.person_id = CAST(t.{_q(plan.person_column)} AS STRING)"
        )
    if plan.companion is not None:
        on = [f"d.{_q(c)} = t.{_q(c)}" for c in plan.companion_on]
        if plan.companion_sequence is not None:
            seq = _q(plan.companion_sequence)
            on.append(f"d.{seq} <=> t.{seq}")
        query += f" LEFT JOIN {_name(plan.companion)} AS d ON {' AND '.join(on)}"
    return query


def view_sql(plan: ViewPlan, *, person_table: str = PERSON_KEYS.name) -> str:
    """``CREATE OR REPLACE VIEW`` of the plan (names only: no key, no patient value)."""
    cols = ", ".join(f"{_q(c.name)} COMMENT {_lit(c.comment)}" for c in plan.columns)
    comment = _lit(f"De-identified view of {plan.source.name}: {plan.source.comment}")
    props = (
        f"{_lit(SOURCE_PROPERTY)} = {_lit(plan.source.name)}, "
        f"{_lit(POLICY_PROPERTY)} = {_lit(str(plan.policy_version))}"
    )
    return (
        f"CREATE OR REPLACE VIEW {_name(plan.view)} ({cols}) COMMENT {comment} "
        f"TBLPROPERTIES ({props}) AS {select_sql(plan, person_table=person_table)}"
    )


def deid_spec(plan: ViewPlan, *, name: str | None = None, keys: tuple[str, ...] = ()) -> TableSpec:
    """The view (or its materialization ``name`` with merge ``keys``) as a TableSpec."""
    return TableSpec(
        name=name or plan.view,
        comment=f"De-identified {plan.source.name}: {plan.source.comment}",
        columns=tuple(
            column(c.name, c.data_type, c.comment, nullable=c.name not in keys)
            for c in plan.columns
        ),
        keys=keys,
        person_key=plan.person_column,
    )


def without_companion(plan: ViewPlan) -> ViewPlan:
    """The plan with its companion's columns as nulls (same columns and types, no join)."""
    cols = tuple(
        replace(c, sql=f"CAST(NULL AS {c.data_type.simpleString()})")
        if c.sql.startswith("d.")
        else c
        for c in plan.columns
    )
    return replace(plan, columns=cols, companion=None, companion_on=(), companion_sequence=None)


def create_view(spark: SparkSession, plan: ViewPlan) -> bool:
    """Create or replace the view; False when the plan leaves it no column.

    A companion table that does not exist yet (the NLP job has not run) leaves the
    de-identified text null; the next refresh after it exists joins it.
    """
    if not plan.columns:
        return False
    if plan.companion is not None and not spark.catalog.tableExists(plan.companion):
        plan = without_companion(plan)
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {_q(plan.view.split('.')[0])}")
    spark.sql(view_sql(plan))
    return True
