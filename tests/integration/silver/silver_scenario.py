"""A whole silver scenario in its own process, catalog and warehouse (run by test_silver_job).

``python -m tests.integration.silver.silver_scenario OUT_JSON PATIENTS``: build a small
synthetic hospital whose HIS holds its first (wrong) diagnosis codes, load the vocabularies,
land everything, run silver, score it against the truth, run silver again (nothing to do),
deliver the HIS's late corrections, extract and run silver again, score again. Writes what
it saw as JSON. Silver reads *every* bronze table, so it cannot share the test run's
catalog with the bronze tests' own landings.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from time import monotonic

from pyspark.sql import functions as F


def main(out_json: str, patients: str) -> int:
    from jobs import ingest, silver, terminology
    from lakehouse.settings import load_settings
    from lakehouse.silver.evaluate import evaluate
    from lakehouse.spark import build_spark
    from lakehouse.synthetic import DirtRates, HospitalConfig, generate
    from lakehouse.synthetic.his import apply_late_corrections

    cfg = load_settings()
    out = cfg.data_dir / "synthetic"
    dirt = replace(DirtRates.clean(), late_correction=0.15, unit_variant=0.15)
    generate(
        out,
        HospitalConfig(
            patients=int(patients), sites=3, seed=11, dirt=dirt, his_corrections="later"
        ),
    )
    spark = build_spark(cfg)
    result: dict[str, object] = {}
    timings: dict[str, float] = {}
    result["seconds"] = timings
    clock = monotonic()

    def lap(phase: str) -> None:
        nonlocal clock
        now = monotonic()
        timings[phase] = round(now - clock, 1)
        clock = now

    lap("generate_and_start")
    terminology.run(spark, cfg)
    lap("vocab")
    ingest.run(spark, cfg)
    lap("ingest")
    first = silver.run(spark, cfg)
    lap("silver_first")
    result["first"] = [asdict(b) for b in first.bronze]
    result["patients_filled_first"] = first.patients_filled
    result["scores_before_corrections"] = [asdict(s) for s in evaluate(spark, out / "truth")]

    lap("evaluate")
    again = silver.run(spark, cfg)
    result["again"] = [asdict(b) for b in again.bronze]
    lap("silver_again")

    result["corrections"] = apply_late_corrections(out, at=datetime(2026, 11, 20, 9, 30))
    ingest.run(spark, cfg, source="his")
    lap("ingest_his")
    third = silver.run(spark, cfg)
    result["third"] = [asdict(b) for b in third.bronze]
    lap("silver_third")
    result["scores"] = [asdict(s) for s in evaluate(spark, out / "truth")]

    truth = out / "truth"
    docs = spark.read.parquet(str(truth / "documents.parquet"))
    notes = spark.table("silver.note")
    result["notes"] = {
        "truth": docs.where(F.col("source") == "notes").count(),
        "silver": notes.count(),
        "with_patient": notes.where(F.col("patient_key").isNotNull()).count(),
        "language_agrees": notes.alias("n")
        .join(
            docs.withColumn("note_id", F.regexp_extract("file", r"([^/]+)\.txt$", 1)).alias("d"),
            "note_id",
        )
        .where(F.col("n.language") == F.col("d.language"))
        .count(),
    }
    images = spark.read.parquet(str(truth / "image_labels.parquet"))
    studies = spark.table("silver.imaging_study")
    result["imaging"] = {
        "truth": images.count(),
        "silver": studies.count(),
        "with_encounter_patient": studies.where(F.col("patient_key").isNotNull()).count(),
        "series": spark.table("silver.imaging_series").count(),
    }
    patients_df = spark.table("silver.patient")
    result["patients"] = {
        "rows": patients_df.count(),
        "sex_coded": patients_df.where(F.col("sex_code").isin("1", "2")).count(),
        "by_source": {
            r["source_system"]: r["count"]
            for r in patients_df.groupBy("source_system").count().collect()
        },
    }
    result["rejects"] = spark.table("ops.silver_rejects").count()
    lap("evaluate_and_counts")
    Path(out_json).write_text(json.dumps(result, default=str, indent=1), encoding="utf-8")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
