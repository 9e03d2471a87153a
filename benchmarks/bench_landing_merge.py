"""The bronze MERGE against a growing table: bounded by the replay horizon (ADR 0035) or not.

``python -m benchmarks bench_landing_merge`` or
``python -m benchmarks.bench_landing_merge [--stored N] [--days D] [--records K]``.

``bronze.fhir_resources`` (the project's spec, clustered by institution and ingest day) is
filled with ``--stored`` rows landed over ``--days`` days (one append per day, as daily
runs leave it). Then a delivery of ``--records`` new resources is MERGEd into it the way a
landing does (``lakehouse.tables.writer.upsert``, insert-only, keys vouched unique), three
times each way, alternated: without a bound (ADR 0007's MERGE, which reads every stored key)
and with the landing's bound (``t.ingest_date >=`` the day before today: a run whose files
have no older intent). The peer is the plain Delta append of the same records (what the
MERGE costs at least). Prints the best of each and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any


def _records(spark: Any, first: int, n: int, day: str, files: int) -> Any:
    """``n`` resources of ``files`` files (keys unique), landed on ``day``."""
    from pyspark.sql import functions as F

    file_no = F.col("id") % files
    return spark.range(first, first + n).select(
        F.sha2(F.concat(F.lit(f"{first}/"), file_no.cast("string")), 256).alias("file_sha256"),
        F.col("id").alias("record_index"),
        F.lit("fhir").alias("source_system"),
        F.lit("H0002").alias("institution_code"),
        F.concat(F.lit(f"file:/landing/fhir/H0002/{first}-"), file_no.cast("string")).alias(
            "file_path"
        ),
        F.lit(f"run-{day}").alias("ingest_run_id"),
        F.to_timestamp(F.lit(day)).alias("ingested_at"),
        F.to_date(F.lit(day)).alias("ingest_date"),
        F.lit("Observation").alias("resource_type"),
        F.concat(F.lit("obs-"), F.col("id").cast("string")).alias("resource_id"),
        F.lit(None).cast("string").alias("bundle_id"),
        F.concat(
            F.lit('{"resourceType":"Observation","id":"obs-'),
            F.col("id").cast("string"),
            F.lit('","status":"final","code":{"coding":[{"system":"http://loinc.org",'),
            F.lit('"code":"4548-4"}]},"subject":{"reference":"Patient/p'),
            (F.col("id") % 100_000).cast("string"),
            F.lit('"},"valueQuantity":{"value":6.1,"unit":"%"}}'),
        ).alias("raw_json"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_landing_merge", description=__doc__)
    parser.add_argument("--stored", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args(argv)

    from lakehouse.settings import Settings
    from lakehouse.spark import build_spark
    from lakehouse.tables.bronze.fhir import FHIR_RESOURCES
    from lakehouse.tables.writer import append, ensure_table, upsert

    tmp = Path(tempfile.mkdtemp(prefix="bench_merge_"))
    try:
        cfg = Settings(  # type: ignore[call-arg]
            data_dir=tmp / "data",
            spark={"master": "local[2]", "shuffle_partitions": 2, "ui_enabled": False},
        )
        spark = build_spark(cfg)
        ensure_table(spark, FHIR_RESOURCES)
        today = date.today()
        per_day = args.stored // args.days
        t0 = time.perf_counter()
        for d in range(args.days):
            day = (today - timedelta(days=args.days - d)).isoformat()
            rows = _records(spark, d * per_day, per_day, day, max(1, per_day // 5000))
            rows.write.format("delta").mode("append").saveAsTable(FHIR_RESOURCES.name)
        print(
            f"stored: {per_day * args.days:,} resources over {args.days} days "
            f"(filled in {time.perf_counter() - t0:.0f}s)"
        )
        horizon = f"t.ingest_date >= DATE'{(today - timedelta(days=1)).isoformat()}'"
        times: dict[str, list[float]] = {"unbounded": [], "bounded": [], "append": []}
        first = 10**12
        for _ in range(3):
            for way in times:
                first += args.records
                delivery = _records(spark, first, args.records, today.isoformat(), 40)
                t0 = time.perf_counter()
                if way == "append":
                    report = append(spark, FHIR_RESOURCES, delivery, fresh_keys=True)
                else:
                    report = upsert(
                        spark,
                        FHIR_RESOURCES,
                        delivery,
                        insert_only=True,
                        unique_keys=True,
                        target_filter=horizon if way == "bounded" else None,
                    )
                times[way].append(time.perf_counter() - t0)
                assert report.inserted == args.records, (way, report)
        best = {way: min(runs) for way, runs in times.items()}
        print(f"delivery: {args.records:,} new resources, best of 3, alternated")
        print(f"MERGE, unbounded (reads every stored key): {best['unbounded']:.1f}s")
        print(f"MERGE, bounded by the replay horizon:      {best['bounded']:.1f}s")
        print(f"append (the least a write costs):          {best['append']:.1f}s")
        print(
            f"ratio unbounded/bounded: {best['unbounded'] / best['bounded']:.1f}x; "
            f"bounded/append: {best['bounded'] / best['append']:.2f}x"
        )
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
