"""FHIR read API latency on a lakehouse: single-resource read p95 and ``$everything`` p95.

``python -m benchmarks.bench_fhir [--data DIR] [--patients 60] [--warmup 5]`` reads, for
patients drawn at random from silver (seeded), their ``Patient`` and one laboratory
``Observation`` by id, and their ``Patient/$everything``, exactly as the endpoints of
``/fhir/r4`` do minus HTTP and JSON: the same :class:`~serving.fhir.store.FhirStore`,
access service, policy, patient directory and audit journal (ADR 0017) as ``lakehouse
serve``. The reader is a clinician treating the patient (care team) at the patient's
institution. The lakehouse is ``--data`` (else the configured ``data_dir``) and needs its
silver tables (``make demo``, or ``benchmarks/bench_gold.py --keep`` at 10,000 patients);
without them it says so and exits 0.

Prints p50/p95/max of each kind of request and the silver patient count. Issue #14 asks
for these figures on a 10,000-patient lakehouse; it sets no target. Tests never assert on
these numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pyspark.sql import functions as F

from benchmarks.bench_assistant import _percentile, _settings
from lakehouse.governance.sessions import Principal
from lakehouse.spark import build_spark

if TYPE_CHECKING:
    from serving.fhir.resources import Kind
    from serving.fhir.store import FhirStore


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _one_patient(
    store: FhirStore, lab: Kind, keys: tuple[str, ...], row: dict[str, Any]
) -> tuple[dict[str, float], int]:
    """Seconds of each request for the patient of ``row`` (one of their lab rows), and the
    number of resources of their ``$everything``."""
    from serving.fhir.ids import encode, patient_id
    from serving.fhir.resources import KINDS

    inst, patient = row["institution_code"], row["patient_id"]
    who = Principal(
        "bench-clinician", "clinician", department="BENCH", care_team=(patient,),
        institutions=(inst,),
    )  # fmt: skip
    pid = patient_id(inst, patient)
    obs = encode(*[str(row[k]) for k in keys])
    found: list[int] = []
    spent = {
        "read Patient": _timed(lambda: store.read(who, KINDS["Patient"], pid)),
        "read Observation": _timed(lambda: store.read(who, lab, obs)),
        "Patient/$everything": _timed(lambda: found.append(len(store.everything(who, pid)))),
    }
    return spent, found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fhir", description=__doc__)
    parser.add_argument("--data", type=Path, default=None, help="an existing lakehouse")
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    cfg = _settings(args.data)
    spark = build_spark(cfg)
    if not spark.catalog.tableExists("silver.lab_result"):
        print(f"no silver tables at {cfg.data_dir} (run make demo or pass --data): skipped")
        spark.stop()
        return 0
    from serving.assistant.evaluate import grounded_assistant
    from serving.fhir.resources import VARIANTS
    from serving.fhir.store import FhirStore

    total = spark.table("silver.patient").count()
    with grounded_assistant(spark, cfg, journal="bench-fhir") as (_, tools):
        store = FhirStore(tools, ZoneInfo(cfg.timezone))
        lab = VARIANTS["Observation"][0]
        spec = lab.table(store.tables)
        # One lab row of each of N patients with labs (N rows to the driver, bounded).
        sample = (
            spark.table(spec.name)
            .where(F.col("patient_id").isNotNull())
            .select(*dict.fromkeys(["institution_code", "patient_id", *spec.keys]))
            .dropDuplicates(["institution_code", "patient_id"])
            .orderBy(F.rand(args.seed))
            .limit(args.patients + args.warmup)
            .collect()
        )
        times: dict[str, list[float]] = {"read Patient": [], "read Observation": [],
                                         "Patient/$everything": []}  # fmt: skip
        counts: list[int] = []
        for i, row in enumerate(sample):
            spent, resources = _one_patient(store, lab, spec.keys, row.asDict())
            if i >= args.warmup:
                for name, seconds in spent.items():
                    times[name].append(seconds)
                counts.append(resources)
    spark.stop()
    if not counts:
        print("no patients with lab results: nothing timed")
        return 1
    print(f"silver patients: {total:,}; patients read: {len(counts)}; resources per "
          f"$everything: median {statistics.median(counts):.0f}, max {max(counts)}")  # fmt: skip
    print("request | n | p50 s | p95 s | max s")
    for name, xs in times.items():
        print(f"{name} | {len(xs)} | {statistics.median(xs):.3f} | "
              f"{_percentile(xs, 0.95):.3f} | {max(xs):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
