"""Data quality over bronze, silver and gold: rules as data, run as Spark SQL.

``run_rules`` runs the YAML rules (``lakehouse/quality/rules/*.yaml``, Kahn framework);
``lakehouse.quality.dqd.run_dqd`` runs the OMOP DataQualityDashboard checks over gold.
Both return a :class:`QualityReport` and append it to ``dq.results`` / ``dq.failures``.
Design: docs/quality.md and ADR 0012.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.quality.engine import Engine, Names, RuleResult
from lakehouse.quality.report import DEFAULT_OUTPUTS, Outputs, QualityReport, trend, write_report
from lakehouse.quality.rules import Rule, load_rules, parse_rule, select
from lakehouse.settings import Settings

__all__ = [
    "Outputs",
    "QualityReport",
    "Rule",
    "RuleResult",
    "load_rules",
    "parse_rule",
    "run_rules",
    "table_keys",
    "trend",
]


def table_keys() -> dict[str, tuple[str, ...]]:
    """Key columns of every table spec, by table name (the keys of sampled failures)."""
    from lakehouse.tables.registry import all_specs

    return {s.name: s.keys for s in all_specs() if s.keys}


def run_rules(
    spark: SparkSession,
    settings: Settings,
    *,
    layer: str | None = None,
    rules: Sequence[Rule] | Iterable[Path] | Path | None = None,
    table_names: Mapping[str, str] | None = None,
    run_id: str | None = None,
    write: bool = True,
    outputs: Outputs = DEFAULT_OUTPUTS,
) -> QualityReport:
    """Run the quality rules (of one ``layer``, or all) and record them in ``dq.results``.

    ``rules``: Rule objects, or YAML files/folders; default ``settings.quality.rules_dir``
    (else the shipped rules). ``table_names`` maps logical table names to the tables to
    read (tests read their own copies). A rule never raises for bad data: it reports
    fail, error or not_applicable.
    """
    if rules is None:
        chosen = load_rules(settings.quality.rules_dir)
    elif isinstance(rules, Path) or (
        not isinstance(rules, Sequence) or not all(isinstance(r, Rule) for r in rules)
    ):
        chosen = load_rules(rules)  # type: ignore[arg-type]
    else:
        chosen = list(rules)
    chosen = select(chosen, layer=layer)
    engine = Engine(
        spark,
        names=Names(table_names),
        keys=table_keys(),
        sample_keys=settings.quality.sample_keys,
    )
    report = QualityReport(run_id or str(uuid.uuid4()), "rules", engine.run(chosen))
    if write:
        write_report(spark, report, outputs)
    return report
