"""Data quality: ``lakehouse dq run [--layer L] [--rules FILE]`` / ``python -m jobs.quality``.

Runs the YAML rules (``lakehouse/quality/rules``) over bronze, silver and gold, and the OMOP
DataQualityDashboard checks over gold, appending each to ``dq.results`` (failing keys to
``dq.failures``). Bad data never fails the run: rules report fail/error/not_applicable.
With ``quality.fail_on`` set, failed rules of that severity or above end the run with
``LH-DQC-003`` after everything has been recorded.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.quality import QualityReport, run_rules
from lakehouse.quality.dqd import run_dqd
from lakehouse.runs import job_run
from lakehouse.settings import Settings

logger = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold")


@dataclass
class QualityRunReport:
    """The reports of one quality run (rules, and DQD when gold is included)."""

    run_id: str
    reports: list[QualityReport] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rep in self.reports:
            for k, v in rep.counts().items():
                out[k] = out.get(k, 0) + v
        return out

    def describe(self, *, limit: int = 20) -> str:
        return "\n".join(r.describe(limit=limit) for r in self.reports)

    def summary(self) -> dict[str, int]:
        """Counts for the demo's stage summary."""
        c = self.counts()
        return {"checks": sum(c.values()), **{f"checks_{k}": v for k, v in c.items()}}


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    layer: str | None = None,
    rules: Path | None = None,
    dqd: bool | None = None,
) -> QualityRunReport:
    """Run the rules (of ``layer`` or all) and, for gold or all layers, the DQD checks.

    ``dqd``: force the DQD checks on or off (default: on when gold is included and
    ``gold.person`` exists).
    """
    if layer is not None and layer not in LAYERS:
        raise error(ErrorCode.DQ_RULE_INVALID, file="(command line)", name="--layer",
                    reason=f"layer must be one of {', '.join(LAYERS)}")  # fmt: skip
    with job_run(spark, cfg, "quality") as rec:
        out = QualityRunReport(rec.run_id)
        out.reports.append(run_rules(spark, cfg, layer=layer, rules=rules, run_id=rec.run_id))
        with_gold = layer in (None, "gold")
        if dqd is None:
            dqd = with_gold and bool(spark.catalog.tableExists("gold.person"))
        if dqd:
            out.reports.append(run_dqd(spark, cfg, run_id=rec.run_id))
        for name, value in out.counts().items():
            rec.count(f"checks_{name}", value)
        failing = [r for rep in out.reports for r in rep.failed_at(cfg.quality.fail_on)]
        if cfg.quality.fail_on != "never" and failing:
            exc = error(
                ErrorCode.DQ_CHECKS_FAILED,
                count=len(failing),
                required=cfg.quality.fail_on,
                names=", ".join(r.rule.id for r in failing[:10]),
            )
            exc.report = out  # type: ignore[attr-defined]  # figures for the caller
            raise exc
    return out


def stage(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Demo stage: run everything, report (never fail on) the findings."""
    report = run(spark, cfg)
    print(report.describe(limit=10))
    return report.summary()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.quality [--layer bronze|silver|gold] [--rules FILE] [--no-dqd]``."""
    parser = argparse.ArgumentParser(prog="jobs.quality", description=__doc__)
    parser.add_argument("--layer", choices=LAYERS, help="only the rules of this layer")
    parser.add_argument("--rules", type=Path, help="YAML rule file or folder")
    parser.add_argument("--no-dqd", action="store_true", help="skip the OMOP DQD checks")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    def body(cfg: Settings) -> str:
        spark = build_spark(cfg)
        report = run(
            spark, cfg, layer=args.layer, rules=args.rules, dqd=False if args.no_dqd else None
        )
        return report.describe()

    return run_entrypoint(body)


if __name__ == "__main__":
    raise SystemExit(main())
