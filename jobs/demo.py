"""The demo: every pipeline stage that exists, in order, on embedded defaults.

Later stages (synthetic hospital, bronze, silver, gold, NLP, training, services) append
themselves to :data:`STAGES`. Each stage is recorded in ``ops.job_runs``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.tables.registry import all_specs
from lakehouse.tables.writer import ensure_tables

logger = logging.getLogger(__name__)

StageFn = Callable[[SparkSession, Settings], dict[str, int]]


@dataclass(frozen=True)
class Stage:
    """One step of the demo."""

    name: str
    summary: str
    run: StageFn


@dataclass
class StageOutcome:
    name: str
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class DemoReport:
    """What the demo did, stage by stage."""

    stages: list[StageOutcome] = field(default_factory=list)


def foundation(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Create the catalog's schemas and every specified table (idempotent)."""
    reports = ensure_tables(spark, all_specs())
    return {
        "tables": len(reports),
        "tables_created": sum(r.created for r in reports),
        "tables_evolved": sum(r.changed and not r.created for r in reports),
    }


def ingest(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Land the synthetic hospital's files into bronze (jobs.ingest), exactly once."""
    from jobs import ingest as ingest_job

    totals = ("files_landed", "files_duplicate", "records_landed", "records_quarantined")
    counts = ingest_job.run(spark, cfg).counts()
    return {key: counts.get(key, 0) for key in totals}


def synth(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Build the synthetic multi-site hospital under <data_dir>/synthetic (jobs.synth)."""
    from jobs import synth as synth_job

    return synth_job.run(spark, cfg)


def vocab(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Load the demo vocabularies, local code maps and unit conversions (jobs.terminology)."""
    from jobs import terminology

    return terminology.stage(spark, cfg)


def silver(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Turn the bronze changes into the conformed silver tables (jobs.silver)."""
    from jobs import silver as silver_job

    counts = silver_job.run(spark, cfg).counts()
    return {k: v for k, v in counts.items() if k in ("rows_read", "rejects") or "written" in k}


def empi(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Link silver.patient records into persons with stable ids (jobs.empi)."""
    from jobs import empi as empi_job

    return dict(empi_job.run(spark, cfg).counts)


def gold(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """The OMOP CDM v5.4 tables from silver, with stable ids (jobs.gold)."""
    from jobs import gold as gold_job

    report = gold_job.run(spark, cfg)
    return {f"{t}.rows": r.written for t, r in sorted(report.tables.items()) if r.written}


def quality(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Data-quality rules over bronze/silver and the OMOP DQD checks over gold (jobs.quality)."""
    from jobs import quality as quality_job

    return quality_job.stage(spark, cfg)


def features(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Patient/encounter feature tables and MEDS events from gold (jobs.features)."""
    from jobs import features as features_job

    return dict(features_job.run(spark, cfg).counts())


def deid(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """De-identified views deid.* over silver and gold, and their k-anonymity (jobs.deid)."""
    from jobs import deid as deid_job

    return deid_job.stage(spark, cfg)


def backup(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """A full, checksummed backup of every table and the local state (jobs.backup)."""
    from jobs import backup as backup_job

    return backup_job.stage(spark, cfg)


def notebooks(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    from jobs import notebooks as notebooks_job

    return notebooks_job.stage(spark, cfg)


STAGES: list[Stage] = [
    Stage("foundation", "catalog schemas and every table spec", foundation),
    Stage("synth", "synthetic multi-site hospital: sources, dirt, truth", synth),
    Stage("ingest", "land every source's files into bronze (jobs.ingest)", ingest),
    Stage("vocab", "terminology: vocabularies, local code maps, units (jobs.terminology)", vocab),
    Stage("silver", "conformed, coded clinical model from every source (jobs.silver)", silver),
    Stage("empi", "master patient index: persons with stable ids (jobs.empi)", empi),
    Stage("gold", "OMOP CDM v5.4 tables from silver, stable ids (jobs.gold)", gold),
    Stage("quality", "data-quality rules and OMOP DQD checks into dq.results", quality),
    Stage("features", "feature tables at index dates and MEDS events (jobs.features)", features),
    Stage("deid", "de-identified views deid.* and their k-anonymity (jobs.deid)", deid),
    Stage("backup", "full backup of every table and the local state, checksummed", backup),
    Stage(
        "notebooks",
        "every notebook in notebooks/ run on the lakehouse, executed copies kept",
        notebooks,
    ),
]


def with_stage(stage: Stage, *, after: str) -> list[Stage]:
    """:data:`STAGES` with ``stage`` inserted after the stage named ``after``.

    For stages of packages ``jobs`` may not import (``models``): the command line, which
    composes the layers, adds them (``lakehouse demo`` adds the NLP job after gold)."""
    names = [s.name for s in STAGES]
    at = names.index(after) + 1
    return [*STAGES[:at], stage, *STAGES[at:]]


def select_stages(
    names: Sequence[str] | None, stages: Sequence[Stage] | None = None
) -> list[Stage]:
    """The stages asked for, in pipeline order (all when ``names`` is empty)."""
    every = list(STAGES if stages is None else stages)
    if not names:
        return every
    known = {s.name: s for s in every}
    for name in names:
        if name not in known:
            raise error(ErrorCode.UNKNOWN_STAGE, name=name, names=", ".join(known))
    return [s for s in every if s.name in set(names)]


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    stages: Sequence[str] | None = None,
    pipeline: Sequence[Stage] | None = None,
) -> DemoReport:
    """Run the chosen stages of ``pipeline`` (default :data:`STAGES`) in order; the first
    failure stops the demo."""
    report = DemoReport()
    for stage in select_stages(stages, pipeline):
        t0 = time.perf_counter()
        with job_run(spark, cfg, f"demo.{stage.name}") as rec:
            for key, value in stage.run(spark, cfg).items():
                rec.count(key, value)
        report.stages.append(StageOutcome(stage.name, time.perf_counter() - t0, dict(rec.counts)))
    return report


def describe(report: DemoReport, cfg: Settings) -> str:
    """The demo's closing summary: what ran and where to look."""
    lines = ["", "Demo finished:"]
    for s in report.stages:
        counts = ", ".join(f"{k}={v}" for k, v in s.counts.items())
        lines.append(f"  {s.name:<14} {s.seconds:6.1f}s  {counts}")
    lines += [
        "",
        "Where to look:",
        f"  warehouse (Delta tables): {cfg.warehouse}",
        f"  catalog:                  {cfg.metastore.kind} ({cfg.metastore_dir})",
        '  run history:              lakehouse sql "select * from ops.job_runs"',
        "  health check:             lakehouse doctor",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.demo [--stage NAME ...]``."""
    parser = argparse.ArgumentParser(prog="jobs.demo", description=__doc__)
    parser.add_argument("--stage", action="append", help="run only this stage (repeatable)")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    return run_entrypoint(lambda cfg: describe(run(build_spark(cfg), cfg, stages=args.stage), cfg))


if __name__ == "__main__":
    raise SystemExit(main())
