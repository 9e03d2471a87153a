"""Rules to Spark SQL: each rule becomes a population predicate, a violation predicate and
the lookups (left joins on equal columns) the predicates read.

Typed templates are sugar over the same three parts, so the engine runs every rule of a
table in one aggregate query. Null semantics: a violation predicate that is null counts as
*not* violated (write completeness as ``not_null``); a population predicate that is null
leaves the row out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lakehouse.errors import ErrorCode, error
from lakehouse.quality.rules import Lookup, Rule

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Compiled:
    """A rule as SQL over the checked table ``t`` and its lookups."""

    rule: Rule
    population: str
    violation: str
    lookups: tuple[Lookup, ...]


def sql_literal(value: Any) -> str:
    """A Spark SQL literal for a YAML scalar."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def col(name: str) -> str:
    """A column of the checked table, qualified with ``t`` when it is a bare identifier."""
    return f"t.`{name}`" if _IDENT.match(name) else name


def _alias(prefix: str, *parts: object) -> str:
    digest = hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:10]
    return f"__{prefix}_{digest}"


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _bad(rule: Rule, reason: str) -> Exception:
    return error(
        ErrorCode.DQ_RULE_INVALID, file=rule.source_file or "<memory>", name=rule.id, reason=reason
    )


def _join_lookup(rule: Rule, prefix: str) -> Lookup:
    c = rule.check
    cols, refs = _names(c["columns"]), _names(c["ref_columns"])
    if len(cols) != len(refs):
        raise _bad(rule, "columns and ref_columns differ in length")
    where = c.get("ref_where")
    return Lookup(
        alias=_alias(prefix, c["ref_table"], cols, refs, where),
        table=str(c["ref_table"]),
        on=tuple((col(a), b) for a, b in zip(cols, refs, strict=True)),
        where=where,
    )


def compile_rule(rule: Rule) -> Compiled:
    """The population, violation and lookups of ``rule``."""
    c: Mapping[str, Any] = rule.check
    kind = rule.check_type
    population = f"({rule.where})" if rule.where else "TRUE"
    lookups = list(rule.lookups)
    if kind == "violated_when":
        violation = str(c["sql"])
    elif kind == "not_null":
        violation = f"{col(str(c['column']))} IS NULL"
    elif kind == "in_set":
        values = c["values"]
        if not isinstance(values, list) or not values:
            raise _bad(rule, "in_set needs a non-empty list of values")
        v = col(str(c["column"]))
        violation = f"{v} IS NOT NULL AND {v} NOT IN ({', '.join(sql_literal(x) for x in values)})"
    elif kind == "unique":
        cols = _names(c["columns"])
        lk = Lookup(
            alias=_alias("u", rule.table, cols, rule.where),
            table=rule.table,
            on=tuple((col(x), x) for x in cols),
            columns=("count(*) AS n",),
            where=rule.where,
        )
        lookups.append(lk)
        violation = " AND ".join([*(f"{col(x)} IS NOT NULL" for x in cols), f"{lk.alias}.n > 1"])
    elif kind in ("foreign_key", "has_related"):
        lk = _join_lookup(rule, "fk" if kind == "foreign_key" else "rel")
        lookups.append(lk)
        if kind == "foreign_key":
            present = [f"{a} IS NOT NULL" for a, _ in lk.on]
            allowed = c.get("allow") or []
            if allowed:
                lits = ", ".join(sql_literal(x) for x in allowed)
                present.append(f"{lk.on[0][0]} NOT IN ({lits})")
            violation = " AND ".join([*present, f"{lk.alias}.hit IS NULL"])
        else:
            violation = f"{lk.alias}.hit IS NULL"
    elif kind == "code_valid":
        concept_table = str(c.get("concept_table", "vocab.concept"))
        column = str(c["column"])
        where = c.get("concept_where")
        lk = Lookup(
            alias=_alias("cv", concept_table, column, where),
            table=concept_table,
            on=((col(column), "concept_id"),),
            columns=("min(valid_start_date) AS valid_from", "max(valid_end_date) AS valid_to"),
            where=where,
        )
        lookups.append(lk)
        day = f"to_date({col(str(c['date_column']))})"
        unknown = f"{lk.alias}.hit IS NULL"
        if not c.get("allow_null", False):
            unknown = f"{col(column)} IS NULL OR {unknown}"
        violation = f"{unknown} OR {day} < {lk.alias}.valid_from OR {day} > {lk.alias}.valid_to"
    elif kind == "temporal_order":
        op = "<=" if c.get("strict", False) else "<"
        violation = f"{col(str(c['after']))} {op} {col(str(c['before']))}"
    elif kind == "computed":
        tol = float(c.get("tolerance", 0))
        violation = f"abs(({c['expression']}) - ({c['expected']})) > {tol!r}"
    elif kind == "timeliness":
        ref = str(c.get("reference", "current_timestamp()"))
        ref_sql = col(ref) if _IDENT.match(ref) else ref
        hours = float(c["max_lag_hours"])
        violation = (
            f"(unix_timestamp({ref_sql}) - unix_timestamp({col(str(c['column']))})) / 3600.0 "
            f"> {hours!r}"
        )
    else:  # pragma: no cover - parse_rule refuses unknown types
        raise _bad(rule, f"unknown check type {kind}")
    return Compiled(rule, population, violation, tuple(lookups))


def lookup_sql(lk: Lookup, physical: str) -> str:
    """The reference side of a lookup: grouped by its join columns, one row per key."""
    keys = [f"`{ref}` AS __k{i}" for i, (_, ref) in enumerate(lk.on)]
    aggs = []
    for c in lk.columns:
        aggs.append(c if "(" in c else f"{lk.agg}(`{c}`) AS `{c}`")
    where = f" WHERE {lk.where}" if lk.where else ""
    group = ", ".join(f"`{ref}`" for _, ref in lk.on)
    select = ", ".join([*keys, *aggs, "TRUE AS hit"])
    return f"(SELECT {select} FROM {physical}{where} GROUP BY {group}) AS {lk.alias}"  # noqa: S608


def join_sql(lk: Lookup, physical: str) -> str:
    cond = " AND ".join(f"{col(left)} = {lk.alias}.__k{i}" for i, (left, _) in enumerate(lk.on))
    return f"LEFT JOIN {lookup_sql(lk, physical)} ON {cond}"


def groups(compiled: Sequence[Compiled], *, max_rules: int = 150) -> list[list[Compiled]]:
    """Rules of one table in as few queries as their lookups allow (an alias defined two
    ways cannot share a query), at most ``max_rules`` per query (bounded plan size)."""
    out: list[tuple[list[Compiled], dict[str, Lookup]]] = []
    for c in compiled:
        for members, aliases in out:
            if len(members) >= max_rules:
                continue
            if all(aliases.get(lk.alias, lk) == lk for lk in c.lookups):
                members.append(c)
                aliases.update({lk.alias: lk for lk in c.lookups})
                break
        else:
            out.append(([c], {lk.alias: lk for lk in c.lookups}))
    return [members for members, _ in out]
