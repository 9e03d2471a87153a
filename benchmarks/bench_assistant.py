"""Grounded-mode latency of the clinical assistant on a lakehouse: p50/p95 per question.

``python -m benchmarks.bench_assistant [--data DIR] [--questions 200] [--warmup 10]``
asks single-patient questions (the evaluation's answerable cases: the latest value of a
lab in zh/en, ever diagnosed with a condition) of the grounded planner exactly as
``POST /api/ask`` does, minus HTTP and JSON: the same access service, policy, patient
directory, lexicon and tools; every read audited through the service's audit journal
(ADR 0017). The lakehouse is ``--data`` (else the configured ``data_dir``); it needs its
silver tables, vocabularies and the synthetic hospital's truth (``make demo``, or
``benchmarks/bench_gold.py --keep`` at 10,000 patients). Without one it says so and exits 0.

Prints p50/p95/p99/max over the timed questions and the ratio of p95 to issue #11's
target (1 s for single-patient questions on 2 cores). Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from lakehouse.settings import Settings, load_settings
from lakehouse.spark import build_spark

TARGET_P95_S = 1.0


def _settings(data: Path | None) -> Settings:
    if data is not None:  # paths derived from the data folder are resolved when loading
        os.environ["LAKEHOUSE_DATA_DIR"] = str(data)
        os.environ.setdefault("LAKEHOUSE_SPARK__MASTER", "local[2]")
        os.environ.setdefault("LAKEHOUSE_SPARK__UI_ENABLED", "false")
    return load_settings()


def _percentile(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_assistant", description=__doc__)
    parser.add_argument("--data", type=Path, default=None, help="an existing lakehouse")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cfg = _settings(args.data)
    truth = cfg.data_dir / "synthetic" / "truth"
    if not (truth / "questions.parquet").exists():
        print(f"no synthetic lakehouse at {cfg.data_dir} (run make demo or pass --data): skipped")
        return 0
    from serving.assistant.evaluate import build_cases, clinician, grounded_assistant

    spark = build_spark(cfg)
    patients = spark.table("silver.patient").count()
    with grounded_assistant(spark, cfg, journal="bench") as (planner, tools):
        cases, _ = build_cases(
            spark, truth, encounter_table=tools.tables.encounter.name,
            limit=max(1, (args.questions + args.warmup) // 3), seed=args.seed,
        )  # fmt: skip
        asked = [c for c in cases if c.category == "answerable"][: args.questions + args.warmup]
        seconds: list[float] = []
        for i, case in enumerate(asked):
            t0 = time.perf_counter()
            planner.ask(clinician(case), case.question, case.patient)
            if i >= args.warmup:
                seconds.append(time.perf_counter() - t0)
    spark.stop()
    if not seconds:
        print("no answerable questions: nothing timed")
        return 1
    p50, p95 = statistics.median(seconds), _percentile(seconds, 0.95)
    print("patients (silver) | questions | p50 s | p95 s | p99 s | max s | p95 / target")
    print(
        f"{patients:,} | {len(seconds)} | {p50:.3f} | {p95:.3f} | "
        f"{_percentile(seconds, 0.99):.3f} | {max(seconds):.3f} | {p95 / TARGET_P95_S:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
