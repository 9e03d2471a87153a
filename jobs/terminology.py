"""Load vocabularies into ``vocab.*``: the demo subsets, or a hospital's files.

``python -m jobs.terminology`` loads the demo vocabulary (idempotent: a second run writes
nothing). ``python -m jobs.terminology --kind KIND PATH --edition E [--valid-from DATE]``
loads one file: ``icd10cm`` (CMS order file or its folder), ``athena`` (bundle folder),
``codes`` (``code,name`` list; needs ``--vocabulary ICD10|ICD9CM3|ATC|GB2261|UCUM``),
``loinc`` (Loinc.csv), ``local-map`` (a site's local code map) or ``units`` (unit
conversions). ``lakehouse vocab load`` is the same command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.terminology import loaders
from lakehouse.terminology.demo import load_demo
from lakehouse.terminology.store import FIRST_DAY, LoadReport

KINDS = ("demo", "icd10cm", "athena", "codes", "loinc", "local-map", "units")


@dataclass
class TerminologyReport:
    """What one run loaded."""

    run_id: str
    kind: str
    lines: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return dict(self.totals)


def _add(report: TerminologyReport, load: LoadReport) -> None:
    report.lines.append(str(load))
    report.totals["editions_loaded"] = report.totals.get("editions_loaded", 0) + (
        0 if load.skipped else 1
    )
    report.totals["editions_unchanged"] = report.totals.get("editions_unchanged", 0) + int(
        load.skipped
    )
    for k, v in load.counts.items():
        report.totals[k] = report.totals.get(k, 0) + v


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    kind: str = "demo",
    path: Path | None = None,
    edition: str | None = None,
    valid_from: date = FIRST_DAY,
    vocabulary: str | None = None,
    encoding: str = "utf-8",
) -> TerminologyReport:
    """Load the demo vocabulary (default) or one file of ``kind``; recorded in ops.job_runs."""
    if kind not in KINDS:
        raise error(ErrorCode.VOCAB_UNKNOWN, name=kind, reason=f"load kind is one of {KINDS}")
    if kind != "demo" and path is None:
        raise error(
            ErrorCode.VOCAB_FILE_INVALID, file="(none)", reason=f"--kind {kind} needs a path"
        )
    needs_edition = kind not in ("demo", "icd10cm", "athena")
    if needs_edition and not edition:
        raise error(ErrorCode.VOCAB_FILE_INVALID, file=str(path), reason="--edition is required")
    with job_run(spark, cfg, f"terminology.{kind}") as rec:
        report = TerminologyReport(rec.run_id, kind)
        if kind == "demo":
            demo = load_demo(spark) if edition is None else load_demo(spark, edition=edition)
            for load in demo.reports:
                _add(report, load)
            report.totals["unit_conversions_written"] = demo.unit_conversions
        else:
            assert path is not None
            if kind == "icd10cm":
                _add(
                    report,
                    loaders.load_icd10cm(spark, path, edition=edition, valid_from=valid_from),
                )
            elif kind == "athena":
                _add(
                    report, loaders.load_athena(spark, path, edition=edition, valid_from=valid_from)
                )
            elif kind == "codes":
                if not vocabulary:
                    raise error(
                        ErrorCode.VOCAB_UNKNOWN, name="(none)", reason="--vocabulary is required"
                    )
                assert edition is not None
                _add(
                    report,
                    loaders.load_code_list(
                        spark, path, vocabulary_id=vocabulary, edition=edition,
                        valid_from=valid_from, encoding=encoding,
                    ),
                )  # fmt: skip
            elif kind == "loinc":
                assert edition is not None
                _add(
                    report,
                    loaders.load_loinc(
                        spark, path, edition=edition, valid_from=valid_from, encoding=encoding
                    ),
                )
            elif kind == "local-map":
                assert edition is not None
                _add(
                    report,
                    loaders.load_local_map(
                        spark, path, edition=edition, valid_from=valid_from, encoding=encoding
                    ),
                )
            else:
                assert edition is not None
                w = loaders.load_unit_conversions(spark, path, edition=edition)
                report.totals["unit_conversions_written"] = w.inserted + w.updated
                report.lines.append(f"unit conversions: {w.inserted} inserted, {w.updated} updated")
        for key, value in report.totals.items():
            rec.count(key, value)
    return report


def stage(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """The demo stage: load the demo vocabulary (idempotent)."""
    return run(spark, cfg).counts()


def describe(report: TerminologyReport) -> str:
    lines = [f"terminology run {report.run_id} ({report.kind})", *report.lines]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.terminology [--kind KIND PATH --edition E ...]``."""
    parser = argparse.ArgumentParser(prog="jobs.terminology", description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, help="file or folder to load")
    parser.add_argument("--kind", default="demo", choices=KINDS)
    parser.add_argument("--edition", help="edition name (required except demo/icd10cm/athena)")
    parser.add_argument("--valid-from", type=date.fromisoformat, default=FIRST_DAY)
    parser.add_argument("--vocabulary", help="vocabulary id of a code list (--kind codes)")
    parser.add_argument("--encoding", default="utf-8")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    return run_entrypoint(
        lambda cfg: describe(
            run(
                build_spark(cfg), cfg, kind=args.kind, path=args.path, edition=args.edition,
                valid_from=args.valid_from, vocabulary=args.vocabulary, encoding=args.encoding,
            )
        )
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
