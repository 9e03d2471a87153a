"""De-identified views: ``lakehouse deid refresh|check|materialize`` / ``python -m jobs.deid``.

``refresh``: add the persons of the source tables (silver, gold) not yet keyed to
``governance.person_keys`` (insert-only MERGE: tokens and shifts never change), then create
or replace ``deid.<layer>_<table>`` for every source table that exists.
``check``: k-anonymity of every view (or the named ones) over its quasi-identifiers into
``dq.k_anonymity``; fails with ``LH-DID-001`` when a view is below ``deid.k_threshold``.
``materialize``: MERGE one view into ``features.deid_<layer>_<table>`` for model training
and log both Delta versions in ``ops.deid_snapshots``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.deid.catalog import find_plan, materialized_spec, plans
from lakehouse.governance.deid.kanon import KReport, k_anonymity
from lakehouse.governance.deid.person_keys import refresh_person_keys
from lakehouse.governance.deid.policy import load_deid_policy
from lakehouse.governance.deid.views import create_view
from lakehouse.governance.keys import deid_key
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.tables.dq.deid import K_ANONYMITY
from lakehouse.tables.ops.deid import DEID_SNAPSHOTS
from lakehouse.tables.registry import all_specs
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import append, upsert

logger = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    """What ``refresh`` did."""

    run_id: str
    persons_added: int = 0
    views: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    columns_dropped: int = 0


@dataclass
class CheckReport:
    """What ``check`` found, view by view."""

    run_id: str
    views: list[KReport] = field(default_factory=list)

    @property
    def failed(self) -> list[KReport]:
        return [r for r in self.views if not r.passed]


@dataclass(frozen=True)
class SnapshotReport:
    """One materialization (also the row of ``ops.deid_snapshots``)."""

    run_id: str
    source_table: str
    source_version: int | None
    view: str
    target_table: str
    target_version: int
    rows_written: int
    rows_unkeyed: int
    policy_version: int


def _exists(spark: SparkSession, name: str) -> bool:
    return bool(spark.catalog.tableExists(name))


def refresh(
    spark: SparkSession, cfg: Settings, *, specs: Sequence[TableSpec] | None = None
) -> RefreshReport:
    """Key new persons, then create or replace the view of every existing source table."""
    policy = load_deid_policy(cfg.deid.policy_file)
    with job_run(spark, cfg, "deid.refresh") as rec:
        report = RefreshReport(rec.run_id)
        todo = []
        for plan in plans(all_specs() if specs is None else specs, policy):
            if not _exists(spark, plan.source.name):
                report.skipped.append((plan.source.name, "table does not exist"))
            elif not plan.columns:
                report.skipped.append((plan.source.name, "no column survives the policy"))
            else:
                todo.append(plan)
        keyed = refresh_person_keys(
            spark,
            [p.source for p in todo if p.joins_person_keys],
            key=deid_key(cfg),
            max_shift=cfg.deid.shift_max_days,
        )
        report.persons_added = keyed.inserted if keyed else 0
        for plan in todo:
            create_view(spark, plan)
            report.views.append(plan.view)
            report.columns_dropped += len(plan.dropped)
        rec.count("persons_added", report.persons_added)
        rec.count("views", len(report.views))
        rec.count("tables_skipped", len(report.skipped))
        rec.count("columns_dropped", report.columns_dropped)
    return report


def check(
    spark: SparkSession,
    cfg: Settings,
    *,
    specs: Sequence[TableSpec] | None = None,
    tables: Sequence[str] | None = None,
    fail: bool = True,
) -> CheckReport:
    """k-anonymity of the views (all that exist, or ``tables``: sources or view names) into
    ``dq.k_anonymity``; ``LH-DID-001`` when one is below ``deid.k_threshold`` and ``fail``."""
    policy = load_deid_policy(cfg.deid.policy_file)
    catalog = all_specs() if specs is None else list(specs)
    if tables:
        chosen = [find_plan(t, catalog, policy) for t in tables]
    else:
        chosen = [p for p in plans(catalog, policy) if _exists(spark, p.view)]
    threshold = cfg.deid.k_threshold
    with job_run(spark, cfg, "deid.check") as rec:
        report = CheckReport(rec.run_id)
        for plan in chosen:
            if not _exists(spark, plan.view):
                raise error(
                    ErrorCode.DEID_UNKNOWN_TABLE, name=plan.view, names="(run deid refresh)"
                )
            report.views.append(k_anonymity(spark, plan, threshold=threshold))
        _record_checks(spark, report)
        rec.count("views_checked", len(report.views))
        rec.count("views_below_k", len(report.failed))
        rec.count("records_below_k", sum(r.records_below for r in report.views))
        if report.failed and fail:
            exc = error(
                ErrorCode.DEID_K_ANONYMITY_BELOW,
                count=len(report.failed),
                required=threshold,
                names=", ".join(f"{r.view} (k={r.k})" for r in report.failed),
            )
            exc.report = report  # type: ignore[attr-defined]  # figures for the caller
            raise exc
    return report


def _record_checks(spark: SparkSession, report: CheckReport) -> None:
    if not report.views:
        return
    now = datetime.now(UTC)
    rows = [
        (
            report.run_id, now, r.view, r.source_table, list(r.quasi_identifiers), r.unit,
            r.threshold, r.k, r.classes, r.classes_below, r.records, r.records_below, r.passed,
        )
        for r in report.views
    ]  # fmt: skip
    append(spark, K_ANONYMITY, spark.createDataFrame(rows, K_ANONYMITY.schema))


def materialize(
    spark: SparkSession,
    cfg: Settings,
    table: str,
    *,
    specs: Sequence[TableSpec] | None = None,
) -> SnapshotReport:
    """MERGE the view of ``table`` into its Delta table for model training; log versions."""
    policy = load_deid_policy(cfg.deid.policy_file)
    plan = find_plan(table, all_specs() if specs is None else specs, policy)
    target = materialized_spec(plan, policy)
    with job_run(spark, cfg, "deid.materialize") as rec:
        if plan.joins_person_keys:  # every current person keyed, so no row lacks its token
            refresh_person_keys(
                spark, [plan.source], key=deid_key(cfg), max_shift=cfg.deid.shift_max_days
            )
        create_view(spark, plan)
        source_version = _version(spark, plan.source.name)
        view = spark.table(plan.view)
        keyed = reduce(lambda a, b: a & b, [F.col(f"`{k}`").isNotNull() for k in target.keys])
        counts = view.agg(F.count(F.when(~keyed, 1)).alias("unkeyed")).first()
        unkeyed = int(counts["unkeyed"]) if counts else 0
        written = upsert(spark, target, view.where(keyed))
        report = SnapshotReport(
            rec.run_id, plan.source.name, source_version, plan.view, target.name,
            written.version, written.inserted + written.updated, unkeyed, policy.version,
        )  # fmt: skip
        row = (
            report.run_id, datetime.now(UTC), report.source_table, report.source_version,
            report.view, report.target_table, report.target_version, report.rows_written,
            report.rows_unkeyed, report.policy_version,
        )  # fmt: skip
        append(spark, DEID_SNAPSHOTS, spark.createDataFrame([row], DEID_SNAPSHOTS.schema))
        rec.count("rows_written", report.rows_written)
        rec.count("rows_unkeyed", report.rows_unkeyed)
    return report


def _version(spark: SparkSession, name: str) -> int | None:
    last = DeltaTable.forName(spark, name).history(1).select("version").first()
    return int(last["version"]) if last else None


def stage(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Demo stage: refresh the views, then report (not fail on) their k-anonymity."""
    refreshed = refresh(spark, cfg)
    checked = check(spark, cfg, fail=False)
    return {
        "persons_added": refreshed.persons_added,
        "views": len(refreshed.views),
        "views_below_k": len(checked.failed),
    }


def describe_refresh(report: RefreshReport) -> str:
    lines = [
        f"deid refresh {report.run_id}: {len(report.views)} views, "
        f"{report.persons_added} new persons keyed, {report.columns_dropped} columns dropped"
    ]
    lines += [f"  skipped {name}: {why}" for name, why in report.skipped]
    return "\n".join(lines)


def describe_check(report: CheckReport) -> str:
    lines = [f"deid check {report.run_id}:"]
    for r in report.views:
        mark = "ok  " if r.passed else "FAIL"
        lines.append(
            f"  [{mark}] {r.view}: k={r.k} (threshold {r.threshold}, {r.unit}) over "
            f"{', '.join(r.quasi_identifiers) or '(no quasi-identifier)'}; "
            f"{r.records_below} of {r.records} in {r.classes_below} small classes"
        )
    return "\n".join(lines)


def describe_snapshot(report: SnapshotReport) -> str:
    return (
        f"deid materialize {report.run_id}: {report.view} -> {report.target_table}"
        f"@{report.target_version} from {report.source_table}@{report.source_version}; "
        f"{report.rows_written} rows written, {report.rows_unkeyed} without a key"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.deid refresh|check [TABLE ...]|materialize TABLE``."""
    parser = argparse.ArgumentParser(prog="jobs.deid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("refresh", help="key new persons and (re)create every view")
    chk = sub.add_parser("check", help="k-anonymity of the views")
    chk.add_argument("tables", nargs="*", help="source tables or views (default: all)")
    mat = sub.add_parser("materialize", help="MERGE one view into a Delta table")
    mat.add_argument("table", help="source table or its view")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    def body(cfg: Settings) -> str:
        spark = build_spark(cfg)
        if args.command == "refresh":
            return describe_refresh(refresh(spark, cfg))
        if args.command == "check":
            try:
                return describe_check(check(spark, cfg, tables=args.tables or None))
            except LakehouseError as exc:
                if isinstance(getattr(exc, "report", None), CheckReport):
                    print(describe_check(exc.report))  # type: ignore[attr-defined]
                raise
        return describe_snapshot(materialize(spark, cfg, args.table))

    return run_entrypoint(body)


if __name__ == "__main__":
    raise SystemExit(main())
