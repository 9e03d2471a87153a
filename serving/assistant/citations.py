"""Citations ``table@version:key`` and the guard that keeps ``VERSION AS OF`` in place.

A citation names the Delta version of the table a tool read and the row's merge key
(``institution_code|source_system|record id``; the record id is last, so it may itself
hold ``|``). Tools read each table pinned at one version, so the cited version is the one
the number came from, and resolving a citation reads that version again.

:class:`TimeTravelGuard` is the governance SQL guard with one addition: the guard rebuilds
every table reference as a policy subquery and drops a ``VERSION AS OF`` clause on the
way; this subclass lets the guard do all of its checks and rewriting, then puts the
version back on the table inside the policy subquery. Row and column policy are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import sqlglot
from sqlglot import exp

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import GuardedQuery, SqlGuard

_CITATION = re.compile(r"^(?P<table>[a-z0-9_]+\.[a-z0-9_]+)@(?P<version>\d+):(?P<key>.+)$")


@dataclass(frozen=True, order=True)
class Citation:
    """One cited row: table, Delta version, merge key values (in the spec's key order)."""

    table: str
    version: int
    key: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.table}@{self.version}:{'|'.join(self.key)}"

    @classmethod
    def parse(cls, text: str, key_width: dict[str, int]) -> Citation:
        """A citation of one of the tables in ``key_width`` (``LH-SRV-002`` otherwise)."""
        m = _CITATION.match(text.strip())
        if m is None:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not of the form table@version:key")
        table = m["table"]
        if table not in key_width:
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="not a table the assistant cites")
        key = tuple(m["key"].split("|", key_width[table] - 1))
        if len(key) != key_width[table] or not all(key):
            raise error(ErrorCode.SRV_CITATION_INVALID, reason="the key has the wrong parts")
        return cls(table, int(m["version"]), key)


class TimeTravelGuard(SqlGuard):
    """:class:`SqlGuard` that keeps ``VERSION AS OF n`` on the tables a query pins."""

    @classmethod
    def of(cls, guard: SqlGuard) -> TimeTravelGuard:
        return cls(guard.policy, guard.catalog)

    def rewrite(self, who: Principal, sql: str, *, break_glass: bool = False) -> GuardedQuery:
        tree = self.parse(sql)
        pinned: dict[str, exp.Expr] = {}
        for t in tree.find_all(exp.Table):
            version = t.args.get("version")
            if version is not None:
                pinned[_name(t)] = version
                t.set("version", None)
        guarded = super().rewrite(who, tree.sql(dialect="spark"), break_glass=break_glass)
        if not pinned:
            return guarded
        out = sqlglot.parse_one(guarded.sql, read="spark")
        for t in out.find_all(exp.Table):
            if t.db and _name(t) in pinned:
                t.set("version", pinned[_name(t)].copy())
        sql_out = out.sql(dialect="spark")
        self.parse(sql_out)  # what runs must itself pass the read-only check
        return replace(guarded, sql=sql_out)


def _name(t: exp.Table) -> str:
    return f"{t.db}.{t.name}".lower()
