"""Runs compiled rules as Spark SQL: one aggregate query per table (and lookup set).

For each table: its current Delta version is read once and every query reads that version
(``VERSION AS OF``), so a run's figures belong to one snapshot. The rules of the table are
summed in one scan (``sum(CASE WHEN population AND violation ...)``, two columns per rule);
lookups are left joins to reference tables grouped by their join keys. Only rules that
failed read the table a second time, to keep at most ``sample_keys`` failing keys each
(ordered, bounded by a window: nothing unbounded reaches the driver).

A rule whose SQL does not analyze (unknown column, bad syntax) gets status ``error``
(its query is retried rule by rule so one bad rule does not take its neighbours down);
a missing table or an empty population gets ``not_applicable``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from lakehouse.quality.compile import Compiled, compile_rule, groups, join_sql
from lakehouse.quality.rules import Rule
from lakehouse.tables.spec import quote_name

logger = logging.getLogger(__name__)


@dataclass
class RuleResult:
    """What one rule found in one run (a row of ``dq.results``)."""

    rule: Rule
    status: str
    table_version: int | None = None
    rows_checked: int | None = None
    rows_failing: int | None = None
    message: str | None = None
    executed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: int = 0
    samples: list[str] = field(default_factory=list)
    key_columns: tuple[str, ...] = ()

    @property
    def percent_failing(self) -> float | None:
        if not self.rows_checked or self.rows_failing is None:
            return None
        return 100.0 * self.rows_failing / self.rows_checked


class Names:
    """Logical table names (``silver.encounter``) to physical ones; identity by default."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = dict(mapping or {})

    def __call__(self, logical: str) -> str:
        return self.mapping.get(logical, logical)


def _status(rule: Rule, checked: int, failing: int) -> str:
    if checked == 0:
        return "not_applicable"
    return "fail" if 100.0 * failing / checked > rule.threshold else "pass"


def _condition(error: BaseException) -> str:
    """A short, value-free reason: the Spark error condition, else the exception type."""
    getter = getattr(error, "getCondition", None) or getattr(error, "getErrorClass", None)
    cond = getter() if callable(getter) else None
    return str(cond or type(error).__name__)


def table_version(spark: SparkSession, physical: str) -> int | None:
    """Latest Delta version of a table; None for a table that is not Delta (a view)."""
    try:
        history = spark.sql(f"DESCRIBE HISTORY {quote_name(physical)} LIMIT 1")
        row = history.select("version").first()
    except PySparkException:
        return None
    return int(row["version"]) if row is not None else None


def _source(physical: str, version: int | None) -> str:
    return f"{physical} VERSION AS OF {version}" if version is not None else physical


class Engine:
    """Runs rules over tables; ``keys`` gives each logical table's key columns."""

    def __init__(
        self,
        spark: SparkSession,
        *,
        names: Names,
        keys: Mapping[str, Sequence[str]],
        sample_keys: int,
    ) -> None:
        self.spark, self.names, self.keys, self.sample_keys = spark, names, keys, sample_keys
        self._known: dict[str, bool] = {}

    def run(self, rules: Sequence[Rule]) -> list[RuleResult]:
        by_table: dict[str, list[Rule]] = {}
        for r in rules:
            by_table.setdefault(r.table, []).append(r)
        results: list[RuleResult] = []
        for table, table_rules in by_table.items():
            results.extend(self._run_table(table, table_rules))
        order = {r.id: i for i, r in enumerate(rules)}
        return sorted(results, key=lambda x: order[x.rule.id])

    def _run_table(self, table: str, rules: list[Rule]) -> list[RuleResult]:
        physical = self.names(table)
        if not self.spark.catalog.tableExists(physical):
            return [RuleResult(r, "not_applicable", message="table does not exist") for r in rules]
        version = table_version(self.spark, physical)
        compiled: list[Compiled] = []
        out: list[RuleResult] = []
        for r in rules:
            try:
                c = compile_rule(r)
            except Exception as exc:  # a LakehouseError of a bad template parameter
                out.append(RuleResult(r, "error", version, message=_condition(exc)))
                continue
            missing = [lk.table for lk in c.lookups if not self._exists(lk.table)]
            if missing:
                why = f"reference table {missing[0]} does not exist"
                out.append(RuleResult(r, "not_applicable", version, message=why))
            else:
                compiled.append(c)
        for group in groups(compiled):
            out.extend(self._run_group(physical, version, group))
        return out

    def _exists(self, logical: str) -> bool:
        if logical not in self._known:
            self._known[logical] = bool(self.spark.catalog.tableExists(self.names(logical)))
        return self._known[logical]

    def _from(self, physical: str, version: int | None, group: Sequence[Compiled]) -> str:
        joins: dict[str, str] = {}
        for c in group:
            for lk in c.lookups:
                joins.setdefault(lk.alias, join_sql(lk, self.names(lk.table)))
        return " ".join([f"FROM {_source(physical, version)} AS t", *joins.values()])

    def _run_group(
        self, physical: str, version: int | None, group: list[Compiled]
    ) -> list[RuleResult]:
        selects = []
        for i, c in enumerate(group):
            hit = f"({c.population}) AND coalesce(({c.violation}), FALSE)"
            selects.append(f"sum(CASE WHEN {c.population} THEN 1 ELSE 0 END) AS n{i}")
            selects.append(f"sum(CASE WHEN {hit} THEN 1 ELSE 0 END) AS f{i}")
        query = f"SELECT {', '.join(selects)} {self._from(physical, version, group)}"
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            row = self.spark.sql(query).first()
        except PySparkException as exc:
            if len(group) == 1:
                reason = _condition(exc)
                logger.warning("rule %s could not run: %s", group[0].rule.id, reason)
                return [RuleResult(group[0].rule, "error", version, message=reason)]
            out: list[RuleResult] = []
            for c in group:  # find the bad rule(s); the others still run
                out.extend(self._run_group(physical, version, [c]))
            return out
        ms = int((time.perf_counter() - t0) * 1000)
        assert row is not None
        results = []
        for i, c in enumerate(group):
            checked, failing = int(row[f"n{i}"] or 0), int(row[f"f{i}"] or 0)
            results.append(
                RuleResult(
                    c.rule,
                    _status(c.rule, checked, failing),
                    version,
                    checked,
                    failing,
                    message="no rows checked" if checked == 0 else None,
                    executed_at=started,
                    duration_ms=ms,
                    key_columns=self._key(c.rule),
                )
            )
        failing_rules = [(c, r) for c, r in zip(group, results, strict=True) if r.rows_failing]
        if failing_rules and self.sample_keys > 0:
            self._sample(physical, version, group, failing_rules)
        return results

    def _key(self, rule: Rule) -> tuple[str, ...]:
        return tuple(rule.key or self.keys.get(rule.table, ()))

    def _sample(
        self,
        physical: str,
        version: int | None,
        group: list[Compiled],
        failing: list[tuple[Compiled, RuleResult]],
    ) -> None:
        """Keep the first ``sample_keys`` failing keys (in key order) of each failed rule."""
        items, conds = [], []
        for c, r in failing:
            if not r.key_columns:
                continue
            key = ", ".join(f"'{k}', CAST(t.`{k}` AS STRING)" for k in r.key_columns)
            cond = f"({c.population}) AND coalesce(({c.violation}), FALSE)"
            conds.append(f"({cond})")
            rid = c.rule.id.replace("'", "")
            items.append(
                f"CASE WHEN {cond} THEN named_struct('rule', '{rid}', "
                f"'key', to_json(named_struct({key}))) END"
            )
        if not items:
            return
        n = int(self.sample_keys)
        query = f"""  -- rule SQL is configuration, not user input
            SELECT f.rule AS rule, f.key AS key FROM (
              SELECT f, row_number() OVER (PARTITION BY f.rule ORDER BY f.key) AS rn FROM (
                SELECT explode(filter(array({", ".join(items)}), x -> x IS NOT NULL)) AS f
                {self._from(physical, version, group)}
                WHERE {" OR ".join(conds)}
              )
            ) WHERE rn <= {n}
        """  # noqa: S608
        try:
            rows = self.spark.sql(query).collect()  # bounded: at most n rows per rule
        except PySparkException as exc:
            logger.warning("failing keys of %s not sampled: %s", physical, _condition(exc))
            return
        by_rule: dict[str, list[str]] = {}
        for row in rows:
            by_rule.setdefault(str(row["rule"]), []).append(str(row["key"]))
        for c, r in failing:
            r.samples = sorted(by_rule.get(c.rule.id, []))
