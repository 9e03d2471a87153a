"""OMOP DataQualityDashboard checks (``run_dqd``) on generated gold rows: wall time, rows/s.

``python benchmarks/bench_dqd.py [--persons 1000 10000] [--thresholds DIR]``. Generates
OMOP CDM rows with Spark (per person: an observation period, 3 visits, 3 conditions and 20
measurements, ids and dates derived from the person id; a small concept table) into
``gold.bench_<table>`` Delta tables of a temporary warehouse, runs
``lakehouse.quality.dqd.run_dqd`` over them (threshold files: ``--thresholds``, else
``$LAKEHOUSE_REFDATA/omop-dqd-checks`` when set, else the CDM-spec checks) and prints the
wall time, the checks run and the rows of the checked tables per second for each size.
The lead's gold build can call :func:`bench` on real gold tables (``names=None``).

Measured 2026-11-26 (published thresholds, 585 checks, warm run, ``local[2]`` on the shared
2-core machine at load 18-25): 1,000 persons / 28,013 rows 104.0 s (269 rows/s); 10,000
persons / 280,013 rows 88.0 s (3,183 rows/s). 0 fail, 0 error. Details in docs/quality.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.quality.dqd import run_dqd
from lakehouse.settings import Settings
from lakehouse.spark import build_spark
from lakehouse.tables.gold.omop import SPECS
from lakehouse.tables.writer import conform, ensure_table

TABLES = ("person", "observation_period", "visit_occurrence", "condition_occurrence",
          "measurement", "concept")  # fmt: skip
CONCEPTS = [
    (8507, "MALE", "Gender", "S"), (8532, "FEMALE", "Gender", "S"),
    (8515, "Asian", "Race", "S"), (38003564, "Not Hispanic", "Ethnicity", "S"),
    (9201, "Inpatient Visit", "Visit", "S"), (9202, "Outpatient Visit", "Visit", "S"),
    (32817, "EHR", "Type Concept", "S"), (201826, "Type 2 diabetes", "Condition", "S"),
    (320128, "Essential hypertension", "Condition", "S"),
    (3004410, "Hemoglobin A1c", "Measurement", "S"), (3004249, "Systolic BP", "Measurement", "S"),
    (8554, "percent", "Unit", "S"), (8876, "mmHg", "Unit", "S"),
]  # fmt: skip


def _frames(spark: SparkSession, persons: int) -> dict[str, DataFrame]:
    p = spark.range(1, persons + 1).withColumnRenamed("id", "person_id")
    born = F.expr("date_add(DATE'1940-01-01', CAST(person_id * 37 % 20000 AS INT))")
    person = p.select(
        "person_id",
        F.when(F.col("person_id") % 2 == 0, 8532).otherwise(8507).alias("gender_concept_id"),
        F.year(born).alias("year_of_birth"), F.month(born).alias("month_of_birth"),
        F.dayofmonth(born).alias("day_of_birth"), born.cast("timestamp").alias("birth_datetime"),
        F.lit(8515).alias("race_concept_id"), F.lit(38003564).alias("ethnicity_concept_id"),
        F.col("person_id").cast("string").alias("person_source_value"),
    )  # fmt: skip
    start = F.expr("date_add(DATE'2024-01-01', CAST(person_id % 300 AS INT))")
    obs = p.select(
        F.col("person_id").alias("observation_period_id"), "person_id",
        start.alias("observation_period_start_date"),
        F.date_add(start, 60).alias("observation_period_end_date"),
        F.lit(32817).alias("period_type_concept_id"),
    )  # fmt: skip
    v = p.crossJoin(spark.range(3).withColumnRenamed("id", "k"))
    vstart = F.expr(
        "date_add(date_add(DATE'2024-01-01', CAST(person_id % 300 AS INT)), CAST(k * 20 AS INT))"
    )
    visit = v.select(
        (F.col("person_id") * 10 + F.col("k")).alias("visit_occurrence_id"), "person_id",
        F.when(F.col("k") == 0, 9201).otherwise(9202).alias("visit_concept_id"),
        vstart.alias("visit_start_date"), vstart.cast("timestamp").alias("visit_start_datetime"),
        F.date_add(vstart, 3).alias("visit_end_date"),
        F.date_add(vstart, 3).cast("timestamp").alias("visit_end_datetime"),
        F.lit(32817).alias("visit_type_concept_id"),
    )  # fmt: skip
    cond = v.select(
        (F.col("person_id") * 10 + F.col("k")).alias("condition_occurrence_id"), "person_id",
        F.when(F.col("k") == 1, 320128).otherwise(201826).alias("condition_concept_id"),
        vstart.alias("condition_start_date"), F.lit(32817).alias("condition_type_concept_id"),
        (F.col("person_id") * 10 + F.col("k")).alias("visit_occurrence_id"),
        F.lit("E11.900").alias("condition_source_value"),
    )  # fmt: skip
    m = p.crossJoin(spark.range(20).withColumnRenamed("id", "k"))
    hba1c = F.col("k") % 2 == 0
    meas = m.select(
        (F.col("person_id") * 100 + F.col("k")).alias("measurement_id"), "person_id",
        F.when(hba1c, 3004410).otherwise(3004249).alias("measurement_concept_id"),
        start.alias("measurement_date"), start.cast("timestamp").alias("measurement_datetime"),
        F.lit(32817).alias("measurement_type_concept_id"),
        F.when(hba1c, 6.0 + F.col("k") / 10).otherwise(120.0 + F.col("k")).alias("value_as_number"),
        F.when(hba1c, 8554).otherwise(8876).alias("unit_concept_id"),
        (F.col("person_id") * 10).alias("visit_occurrence_id"),
        F.when(hba1c, "HBA1C").otherwise("SBP").alias("measurement_source_value"),
    )  # fmt: skip
    concept = spark.createDataFrame(
        [(c, n, d, "Bench", d, s, str(c)) for c, n, d, s in CONCEPTS],
        "concept_id long, concept_name string, domain_id string, vocabulary_id string, "
        "concept_class_id string, standard_concept string, concept_code string",
    ).select("*", F.lit("1970-01-01").cast("date").alias("valid_start_date"),
             F.lit("2099-12-31").cast("date").alias("valid_end_date"))  # fmt: skip
    return {"person": person, "observation_period": obs, "visit_occurrence": visit,
            "condition_occurrence": cond, "measurement": meas, "concept": concept}  # fmt: skip


def generate_omop(spark: SparkSession, persons: int, prefix: str) -> tuple[dict[str, str], int]:
    """Write the generated tables as ``gold.<prefix>_<table>``; the name map and row count."""
    names, rows = {}, 0
    for table, df in _frames(spark, persons).items():
        spec = dataclasses.replace(SPECS[table], name=f"gold.{prefix}_{table}")
        ensure_table(spark, spec)
        out = conform(df, spec)
        out.write.format("delta").mode("overwrite").saveAsTable(spec.name)
        rows += spark.table(spec.name).count()
        names[f"gold.{table}"] = spec.name
    return names, rows


def bench(
    spark: SparkSession, cfg: Settings, *, names: Mapping[str, str] | None, rows: int
) -> dict[str, float]:
    """One DQD run over ``names`` (None: the real gold tables); figures."""
    t0 = time.perf_counter()
    report = run_dqd(spark, cfg, tables=TABLES, table_names=names)
    wall = time.perf_counter() - t0
    c = report.counts()
    return {"wall_s": wall, "rows": rows, "rows_per_s": rows / wall, "checks": len(report.results),
            "pass": c["pass"], "fail": c["fail"], "error": c["error"],
            "not_applicable": c["not_applicable"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_dqd", description=__doc__)
    parser.add_argument("--persons", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--thresholds", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_dqd_"))
    base = Settings()  # type: ignore[call-arg]
    folder = args.thresholds or base.quality.dqd_thresholds_dir
    cfg = Settings(**{  # type: ignore[arg-type]
        "data_dir": work / "var", "metastore": {"kind": "in-memory"},
        "spark": {"master": "local[2]", "shuffle_partitions": 4, "ui_enabled": False},
        "quality": {"dqd_thresholds_dir": folder},
    })  # fmt: skip
    spark = build_spark(cfg)
    print(f"thresholds: {folder or 'CDM spec (no DQD files)'}")
    print("persons | rows | checks | pass | fail | error | n/a | wall s | rows/s")
    for n in args.persons:
        names, rows = generate_omop(spark, n, f"bench{n}")
        bench(spark, cfg, names=names, rows=rows)  # warm-up (JIT, Delta log caches)
        r = bench(spark, cfg, names=names, rows=rows)
        print(f"{n:,} | {rows:,} | {r['checks']:.0f} | {r['pass']:.0f} | {r['fail']:.0f} | "
              f"{r['error']:.0f} | {r['not_applicable']:.0f} | {r['wall_s']:.1f} | "
              f"{r['rows_per_s']:,.0f}")  # fmt: skip
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
