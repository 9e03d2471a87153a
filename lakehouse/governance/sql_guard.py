"""The SQL guard: parse a query, refuse what the policy forbids, inject row filters.

Every query an untrusted caller (the assistant, the SQL endpoint, a notebook user) runs
passes :meth:`SqlGuard.rewrite`:

1. parse as Spark SQL (sqlglot); one statement, a query (SELECT, UNION, CTEs...), with no
   write, DDL or command node anywhere and no JVM-reflection function;
2. every table must be ``schema.table``, known to the catalog and granted to the role;
3. columns are resolved against the columns the role may see, so a PHI column it may not
   see is refused wherever it appears (select list, WHERE, JOIN, GROUP BY, subqueries) and
   ``SELECT *`` expands to the visible columns only;
4. every reference to a table is replaced by ``(SELECT visible columns FROM table WHERE
   row filter) AS alias``, so the filter holds inside joins, subqueries and CTEs;
5. a table read at a version (``VERSION AS OF n``, Delta time travel: what the assistant
   pins and cites) keeps it on the table inside that subquery; the versions come back in
   :attr:`GuardedQuery.pinned` so the audit event names the version actually read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.policy import Policy
from lakehouse.governance.sessions import Principal
from lakehouse.tables.spec import TableSpec

_WRITES = (
    exp.DDL, exp.DML, exp.Command, exp.Insert, exp.Delete, exp.Update, exp.Merge,
    exp.Create, exp.Drop, exp.Alter, exp.Set, exp.Use, exp.Cache, exp.Uncache,
    exp.TruncateTable, exp.Into, exp.Copy, exp.LoadData, exp.Transaction, exp.Commit, exp.Rollback,
)  # fmt: skip
#: In a principal's institutions: the principal is granted every institution's rows.
ALL_SITES = "*"
FORBIDDEN_FUNCTIONS = frozenset({"reflect", "java_method", "try_reflect", "input_file_name"})


@dataclass(frozen=True)
class GuardedQuery:
    """A query the guard let through, rewritten, with what the audit event needs."""

    sql: str
    tables: tuple[str, ...]
    patients: tuple[str, ...]
    break_glass: bool
    #: (table, version) of every table the query reads ``VERSION AS OF`` a version.
    pinned: tuple[tuple[str, int], ...] = ()


class SqlGuard:
    """Rewrites queries under a policy over a catalog of table specs."""

    def __init__(self, policy: Policy, catalog: Mapping[str, TableSpec]) -> None:
        self.policy = policy
        self.catalog = dict(catalog)

    def _deny(self, who: Principal, table: str, reason: str, op: str = "read") -> Exception:
        return error(
            ErrorCode.ACCESS_DENIED, role=who.role, operation=op, table=table, reason=reason
        )

    def parse(self, sql: str) -> exp.Query:
        """The single read-only query in ``sql`` (``LH-SEC-007``/``LH-SEC-008`` otherwise)."""
        try:
            statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
        except SqlglotError as exc:
            raise error(ErrorCode.SQL_UNPARSEABLE, reason=type(exc).__name__) from None
        if len(statements) != 1:
            raise error(ErrorCode.SQL_NOT_READ_ONLY, found=f"{len(statements)} statements")
        tree = statements[0]
        if not isinstance(tree, exp.Query):
            raise error(ErrorCode.SQL_NOT_READ_ONLY, found=type(tree).__name__.upper())
        for node in tree.walk():
            if isinstance(node, _WRITES):
                raise error(ErrorCode.SQL_NOT_READ_ONLY, found=type(node).__name__.upper())
            if isinstance(node, exp.Func) and node.name.lower() in FORBIDDEN_FUNCTIONS:
                raise error(ErrorCode.SQL_NOT_READ_ONLY, found=f"function {node.name.lower()}")
        return tree

    def rewrite(self, who: Principal, sql: str, *, break_glass: bool = False) -> GuardedQuery:
        """The query as ``who`` may run it, or ``LH-SEC-006/007/008``."""
        tree = self.parse(sql)
        pinned = self._take_versions(tree)
        grant = self.policy.grant(who)
        if break_glass and not grant.break_glass:
            raise self._deny(who, "(any)", "break-glass is not granted to the role")
        ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        tables: set[str] = set()
        for t in tree.find_all(exp.Table):
            if not t.db and t.name in ctes:
                continue
            name = f"{t.db}.{t.name}".lower()
            if not t.db or t.catalog or name not in self.catalog:
                raise self._deny(who, name if t.db else t.name, "unknown table (use schema.table)")
            if not self.policy.may_read(who.role, name):
                raise self._deny(who, name, "no read grant")
            tables.add(name)
        schema: dict[str, dict[str, dict[str, str]]] = {}
        for name in tables:
            db, tbl = name.split(".")
            spec = self.catalog[name]
            visible = self.policy.visible_columns(who.role, spec)
            types = {f.name: f.dataType.simpleString() for f in spec.columns}
            schema.setdefault(db, {})[tbl] = {c: types[c] for c in visible}
        mapping: dict[str, object] = dict(schema)
        try:
            tree = qualify(tree, schema=mapping, dialect="spark", validate_qualify_columns=True)
        except SqlglotError as exc:
            if not isinstance(exc, OptimizeError):
                raise error(ErrorCode.SQL_UNPARSEABLE, reason=type(exc).__name__) from None
            raise self._deny(
                who, ", ".join(sorted(tables)), "a column is not visible to the role"
            ) from None
        patients = self._patients(tree)
        for t in [t for t in tree.find_all(exp.Table) if t.db]:
            name = f"{t.db}.{t.name}".lower()
            cols = list(schema[t.db.lower()][t.name.lower()])
            condition = self._row_filter(who, self.catalog[name], break_glass)
            source = exp.table_(t.name, db=t.db, quoted=True)
            if name in pinned:
                source.set("version", _version_of(pinned[name]))
            inner = exp.select(*[_col(c) for c in cols]).from_(source)
            if condition is not None:
                inner = inner.where(condition)
            t.replace(inner.subquery(exp.to_identifier(t.alias_or_name, quoted=True)))
        sql_out = tree.sql(dialect="spark")
        self.parse(sql_out)  # defense in depth: what runs must itself pass the read-only check
        versions = tuple(sorted((n, v) for n, v in pinned.items() if n in tables))
        return GuardedQuery(sql_out, tuple(sorted(tables)), patients, break_glass, versions)

    def _take_versions(self, tree: exp.Expr) -> dict[str, int]:
        """Remove ``VERSION AS OF n`` from every table (the resolver does not know it) and
        return table -> n; one version per table and integers only (``LH-SEC-008``)."""
        pinned: dict[str, int] = {}
        for t in tree.find_all(exp.Table):
            version = t.args.get("version")
            if version is None:
                continue
            value = version.expression
            if (
                str(version.this).upper() != "VERSION"
                or not isinstance(value, exp.Literal)
                or value.is_string
                or not str(value.this).isdigit()
            ):
                raise error(ErrorCode.SQL_UNPARSEABLE, reason="only VERSION AS OF <integer>")
            name = f"{t.db}.{t.name}".lower()
            if pinned.setdefault(name, int(value.this)) != int(value.this):
                raise error(ErrorCode.SQL_UNPARSEABLE, reason="one version per table")
            t.set("version", None)
        return pinned

    def row_filter(self, who: Principal, table: str) -> exp.Expr | None:
        """The rows of ``table`` the policy scopes ``who`` to (None: all), without a read
        grant check: for the access service's own lookups (the patient directory), never
        for running a user's query."""
        return self._row_filter(who, self.catalog[table], False)

    def _row_filter(self, who: Principal, spec: TableSpec, break_glass: bool) -> exp.Expr | None:
        cols, grant = self.policy.columns, self.policy.grant(who)
        names = set(spec.column_names)
        parts: list[exp.Expr] = []
        all_sites = ALL_SITES in who.institutions  # a principal granted every institution
        if "institution" in grant.scope and not all_sites:
            if cols.institution in names:
                parts.append(_in(cols.institution, who.institutions))
            # Patient rows (de-identified ones too) that cannot be site-scoped: fail closed.
            elif spec.phi_columns or spec.person_key:
                raise self._deny(who, spec.name, "no institution column to scope rows by")
        if "department" in grant.scope and not break_glass:
            part = self._department_filter(who, spec)
            if part is not None:
                parts.append(part)
        return exp.and_(*parts) if parts else None

    def _department_filter(self, who: Principal, spec: TableSpec) -> exp.Expr | None:
        """Rows of the user's department or care team; PHI rows that cannot be scoped are
        refused (fail closed); tables without PHI (aggregates, vocabularies) pass."""
        cols, names = self.policy.columns, set(spec.column_names)
        mine: exp.Expr = _col(cols.department).eq(exp.Literal.string(who.department or ""))
        if cols.patient not in names:
            if not spec.phi_columns:
                return None
            if cols.department not in names:
                raise self._deny(who, spec.name, "no patient or department column to scope by")
            return mine
        if cols.department not in names:
            directory = self.policy.patient_directory
            if directory is None or directory not in self.catalog:
                raise self._deny(who, spec.name, "no patient directory to scope rows by")
            db, tbl = directory.split(".")
            source = exp.table_(tbl, db=db, quoted=True)
            if (
                cols.institution in names
                and cols.institution in self.catalog[directory].column_names
            ):
                # Patient ids are per institution: match (institution, patient) pairs, so the
                # same id at another site is another patient.
                pair = [_col(cols.institution), _col(cols.patient)]
                lookup = exp.select(*[c.copy() for c in pair]).from_(source).where(mine)
                mine = exp.In(this=exp.Tuple(expressions=pair), query=lookup.subquery())
            else:
                mine = _col(cols.patient).isin(
                    query=exp.select(_col(cols.patient)).from_(source).where(mine)
                )
        return exp.or_(mine, _in(cols.patient, who.care_team))

    def _patients(self, tree: exp.Expr) -> tuple[str, ...]:
        """Patient ids the query names as literals (``patient_id = 'P1'`` or ``IN (...)``)."""
        found: set[str] = set()
        for col in tree.find_all(exp.Column):
            if col.name != self.policy.columns.patient:
                continue
            parent = col.parent
            if isinstance(parent, exp.EQ):
                other = parent.expression if parent.this is col else parent.this
                if isinstance(other, exp.Literal):
                    found.add(other.name)
            elif isinstance(parent, exp.In) and parent.this is col:
                found.update(e.name for e in parent.expressions if isinstance(e, exp.Literal))
        return tuple(sorted(found))


def _version_of(n: int) -> exp.Version:
    return exp.Version(this="VERSION", kind="AS OF", expression=exp.Literal.number(n))


def _in(column: str, values: tuple[str, ...]) -> exp.Expr:
    if not values:
        return exp.false()
    return _col(column).isin(*[exp.Literal.string(v) for v in values])


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)
