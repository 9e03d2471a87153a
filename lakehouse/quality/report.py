"""A quality run's report, its rows in ``dq.results`` / ``dq.failures``, and the trend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.quality.engine import RuleResult
from lakehouse.tables.dq.results import FAILURES, RESULTS
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import append

#: Severity order for "fail at this severity or above".
SEVERITY_RANK = {
    "fatal": 4, "error": 3, "warning": 2, "convention": 2, "info": 1, "characterization": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Outputs:
    """Where a run's rows go (tests point these at their own tables)."""

    results: TableSpec = RESULTS
    failures: TableSpec = FAILURES


DEFAULT_OUTPUTS = Outputs()


@dataclass
class QualityReport:
    """Every rule's result of one run."""

    run_id: str
    suite: str
    results: list[RuleResult] = field(default_factory=list)
    written: bool = False

    def by_status(self, status: str) -> list[RuleResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[RuleResult]:
        return self.by_status("fail")

    @property
    def errors(self) -> list[RuleResult]:
        return self.by_status("error")

    def result(self, rule_id: str) -> RuleResult:
        for r in self.results:
            if r.rule.id == rule_id:
                return r
        raise KeyError(rule_id)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("pass", "fail", "error", "not_applicable")}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def failed_at(self, severity: str) -> list[RuleResult]:
        """Failed rules of ``severity`` or above."""
        floor = SEVERITY_RANK.get(severity, 99)
        return [r for r in self.failed if SEVERITY_RANK.get(r.rule.severity, 0) >= floor]

    def describe(self, *, limit: int = 20) -> str:
        c = self.counts()
        lines = [
            f"dq {self.suite} {self.run_id}: {len(self.results)} checks, {c['pass']} pass, "
            f"{c['fail']} fail, {c['error']} error, {c['not_applicable']} not applicable"
        ]
        shown = sorted(
            self.failed + self.errors,
            key=lambda r: (-SEVERITY_RANK.get(r.rule.severity, 0), r.rule.id),
        )
        for r in shown[:limit]:
            pct = f"{r.percent_failing:.2f}%" if r.percent_failing is not None else "-"
            lines.append(
                f"  [{r.status.upper():5}] {r.rule.id} ({r.rule.severity}) {_table(r)}: "
                f"{r.rows_failing}/{r.rows_checked} = {pct} > {r.rule.threshold:g}%"
                + (f" ({r.message})" if r.message else "")
            )
        if len(shown) > limit:
            lines.append(f"  ... and {len(shown) - limit} more (dq.results)")
        return "\n".join(lines)


def _table(r: RuleResult) -> str:
    """The table a result is about (a DQD person-completeness check scans gold.person for
    the table it names)."""
    return str(r.rule.tags.get("table", r.rule.table))


def write_report(
    spark: SparkSession, report: QualityReport, outputs: Outputs = DEFAULT_OUTPUTS
) -> None:
    """Append the failures (one commit), then the results (one commit)."""
    now = datetime.now(UTC)
    failures = [
        (
            report.run_id, r.rule.id, _table(r), r.table_version, ",".join(r.key_columns),
            key, rank, now,
        )
        for r in report.results
        for rank, key in enumerate(r.samples, start=1)
    ]  # fmt: skip
    if failures:
        append(spark, outputs.failures, spark.createDataFrame(failures, outputs.failures.schema))
    rows = [
        (
            report.run_id, r.rule.id, r.rule.version, report.suite, r.rule.rule_layer,
            r.rule.description, r.rule.context, r.rule.category, r.rule.subcategory,
            r.rule.check_name or r.rule.check_type, r.rule.severity, _table(r),
            r.rule.column, r.table_version, r.rows_checked, r.rows_failing, r.percent_failing,
            float(r.rule.threshold), r.rule.threshold_source, r.status, r.message,
            len(r.samples), r.executed_at, r.duration_ms,
        )
        for r in report.results
    ]  # fmt: skip
    if rows:
        append(spark, outputs.results, spark.createDataFrame(rows, outputs.results.schema))
    report.written = True


def trend(
    spark: SparkSession,
    *,
    rule_id: str | None = None,
    table: str | None = None,
    results: TableSpec = RESULTS,
) -> DataFrame:
    """Each rule's percent failing run after run, with the table version each run read and
    the change from the rule's previous run (``delta_percent``), oldest first."""
    df = spark.table(results.name).where(F.col("status").isin("pass", "fail"))
    if rule_id is not None:
        df = df.where(F.col("rule_id") == rule_id)
    if table is not None:
        df = df.where(F.col("table_name") == table)
    w = Window.partitionBy("rule_id").orderBy("executed_at", "run_id")
    return df.select(
        "rule_id", "table_name", "run_id", "executed_at", "table_version", "rows_checked",
        "rows_failing", "percent_failing", "threshold", "status",
        (F.col("percent_failing") - F.lag("percent_failing").over(w)).alias("delta_percent"),
    ).orderBy("rule_id", "executed_at", "run_id")  # fmt: skip


def summary_lines(reports: Sequence[QualityReport]) -> list[str]:
    """One line per report, for the demo output."""
    return [r.describe(limit=5) for r in reports]
