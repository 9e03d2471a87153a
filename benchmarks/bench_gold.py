"""Gold build (``jobs.gold``) and its DQD run over a synthetic hospital: wall time, rows/s.

``python benchmarks/bench_gold.py [--patients 1000 10000] [--thresholds DIR]`` builds, for
each size, a fresh lakehouse in a temporary folder the way the demo does (synthetic
hospital with the demo's dirt, ingest, vocabularies, silver, master patient index; not
timed), then times a full gold build (``jobs.gold.run(full=True)``) and the OMOP
DataQualityDashboard checks over every gold table it built (``run_dqd``; thresholds:
``--thresholds``, else ``$LAKEHOUSE_REFDATA/omop-dqd-checks`` when set, else the CDM-spec
checks). ``--data DIR`` times gold and DQD on an existing lakehouse instead (its silver,
vocabularies and index must be there; gold is rebuilt in place). Prints, per size: silver
input rows, gold rows written, wall time and rows/s of each step, and the DQD status counts.

Rows: the rows of every gold table after the build (clinical, dimension and vocabulary
tables; on a fresh lakehouse all written by the build) over the build's, and over the DQD
run's, wall time.
Tests never assert on these numbers.

Measured 2026-11-26 (``--patients 1000``, published thresholds, shared 2-core machine at
load 7-10): silver 29,794 rows -> gold 22,528 rows in 218.8 s (103 rows/s); DQD 1,590 checks
in 124.0 s (182 rows/s): 1,129 pass, 2 fail (2 persons of the dirty hospital without a birth
date), 459 n/a. 10,000 patients (``--data /tmp/lh10k --build 10000``, load 9-17): silver
293,856 rows -> gold 217,716 rows in 258.7 s (842 rows/s); DQD in 106.3 s (2,048 rows/s),
same status counts. Details: docs/gold.md (Benchmark).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.settings import Settings
from lakehouse.spark import build_spark

#: Demo stages that build the gold job's input (not timed).
INPUT_STAGES = ("foundation", "synth", "ingest", "vocab", "silver", "empi")
SILVER_TABLES = (
    "silver.patient", "silver.encounter", "silver.encounter_transfer", "silver.diagnosis",
    "silver.medication_order", "silver.procedure", "silver.lab_result", "silver.vital_sign",
    "silver.note",
)  # fmt: skip


def _settings(data_dir: Path, patients: int, thresholds: Path | None) -> Settings:
    base = Settings()  # type: ignore[call-arg]
    return Settings(**{  # type: ignore[arg-type]
        "data_dir": data_dir,
        "spark": {"master": "local[2]", "shuffle_partitions": 4, "ui_enabled": False,
                  "driver_memory": "3g"},
        "synth": {"patients": patients, "seed": 42},
        "quality": {"dqd_thresholds_dir": thresholds or base.quality.dqd_thresholds_dir},
    })  # fmt: skip


def _rows(spark: SparkSession, tables: tuple[str, ...]) -> int:
    return sum(spark.table(t).count() for t in tables if spark.catalog.tableExists(t))


def measure(spark: SparkSession, cfg: Settings) -> dict[str, Any]:
    """One full gold build and one DQD run over the lakehouse of ``cfg``; figures."""
    from jobs import gold
    from lakehouse.quality.dqd import run_dqd
    from lakehouse.tables.gold.omop import SPECS

    silver_rows = _rows(spark, SILVER_TABLES)
    t0 = time.perf_counter()
    report = gold.run(spark, cfg, full=True)
    gold_s = time.perf_counter() - t0
    written = sum(r.written for r in report.tables.values())
    checked = _rows(spark, tuple(s.name for s in SPECS.values()))
    t0 = time.perf_counter()
    dqd = run_dqd(spark, cfg)
    dqd_s = time.perf_counter() - t0
    return {"silver_rows": silver_rows, "gold_rows": checked, "written": written,
            "gold_s": gold_s, "gold_rows_per_s": checked / gold_s, "checked_rows": checked,
            "dqd_s": dqd_s, "dqd_rows_per_s": checked / dqd_s, "checks": len(dqd.results),
            **dqd.counts(),
            "threshold_source": sorted({r.rule.threshold_source for r in dqd.results})}  # fmt: skip


def _line(label: str, r: dict[str, Any]) -> str:
    return (f"{label} | {r['silver_rows']:,} | {r['gold_rows']:,} | {r['gold_s']:.1f} | "
            f"{r['gold_rows_per_s']:,.0f} | {r['checked_rows']:,} | {r['dqd_s']:.1f} | "
            f"{r['dqd_rows_per_s']:,.0f} | {r['checks']} | {r['pass']} | {r['fail']} | "
            f"{r['error']} | {r['not_applicable']}")  # fmt: skip


def one(data: Path, build: int | None, thresholds: Path | None) -> int:
    """Build the input for ``build`` patients into ``data`` (when given), then measure."""
    from jobs import demo

    cfg = _settings(data, build or 200, thresholds)
    spark = build_spark(cfg)
    if build:
        t0 = time.perf_counter()
        demo.run(spark, cfg, stages=INPUT_STAGES)
        print(f"(input for {build:,} patients built in {time.perf_counter() - t0:.0f}s)")
    r = measure(spark, cfg)
    print(_line(f"{build:,}" if build else str(data), r), flush=True)
    print(f"  thresholds: {', '.join(r['threshold_source'])}", flush=True)
    spark.stop()
    return 0 if not r["fail"] + r["error"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_gold", description=__doc__)
    parser.add_argument("--patients", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--data", type=Path, default=None, help="an existing lakehouse")
    parser.add_argument("--build", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--thresholds", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated lakehouses")
    args = parser.parse_args(argv)
    th = ["--thresholds", str(args.thresholds)] if args.thresholds else []
    if args.data is not None:
        return one(args.data, args.build, args.thresholds)
    print("patients | silver rows | gold rows | gold s | gold rows/s | checked rows | dqd s | "
          "dqd rows/s | checks | pass | fail | error | n/a", flush=True)  # fmt: skip
    failed = 0
    for n in args.patients:  # one process each: its own JVM and embedded catalog
        work = Path(tempfile.mkdtemp(prefix=f"bench_gold_{n}_"))
        cmd = [sys.executable, "-m", "benchmarks.bench_gold", "--data", str(work),
               "--build", str(n), *th]  # fmt: skip
        repo = Path(__file__).resolve().parents[1]
        failed += subprocess.run(cmd, cwd=repo, check=False).returncode != 0
        if args.keep:
            print(f"  lakehouse kept in {work} (--data {work} times it again)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
