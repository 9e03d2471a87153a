"""Feature build over generated OMOP rows: wall time and gold rows/s at 1k and 10k persons.

``python benchmarks/bench_features.py [--persons 1000 10000] [--visits 6]``. Generates OMOP
gold tables in Spark (per person ``--visits`` visits, one in four inpatient; per visit 3
conditions, 2 drug exposures, 5 measurements and 1 procedure over 300 concepts per domain),
then times :func:`lakehouse.features.build_features` (every feature table and the MEDS
events) and a rebuild over unchanged gold (MERGE finds nothing to rewrite), and the MEDS
export. Rows/s = gold rows read / build wall time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.features import FeatureTables, build_features
from lakehouse.features.meds import export_meds
from lakehouse.settings import Settings
from lakehouse.spark import build_spark
from lakehouse.tables.gold import omop


def _start() -> Column:
    return F.lit("2022-01-01").cast("timestamp")


def _days(n: Column) -> Column:
    return F.make_dt_interval(n.cast("int"))


def _hours(n: int) -> Column:
    return F.make_dt_interval(F.lit(0), F.lit(n))


def _write(spark: SparkSession, name: str, logical: str, df: DataFrame) -> int:
    spec = omop.SPECS[logical]
    cols = [
        (F.col(c.name) if c.name in df.columns else F.lit(None)).cast(c.dataType).alias(c.name)
        for c in spec.columns
    ]
    out = df.select(*cols)
    out.write.format("delta").mode("overwrite").saveAsTable(name)
    return spark.table(name).count()


def generate(spark: SparkSession, tables: FeatureTables, persons: int, visits: int) -> int:
    """Write the gold tables for ``persons``; returns the number of rows written."""
    spark.sql("CREATE SCHEMA IF NOT EXISTS gold")
    p = spark.range(1, persons + 1).withColumnRenamed("id", "person_id")
    rows = _write(
        spark,
        tables.gold["person"],
        "person",
        p.select(
            "person_id",
            F.when(F.col("person_id") % 2 == 0, 8507).otherwise(8532).alias("gender_concept_id"),
            (1930 + F.col("person_id") % 70).alias("year_of_birth"),
            F.lit(0).alias("race_concept_id"),
            F.lit(0).alias("ethnicity_concept_id"),
        ),
    )
    v = p.select("person_id", F.explode(F.sequence(F.lit(0), F.lit(visits - 1))).alias("j"))
    v = v.select(
        (F.col("person_id") * 100 + F.col("j")).alias("visit_occurrence_id"),
        "person_id",
        F.when(F.col("j") % 4 == 1, 9201)
        .when(F.col("j") % 4 == 3, 9203)
        .otherwise(9202)
        .alias("visit_concept_id"),
        (_start() + _days(F.col("person_id") % 200 + F.col("j") * 45) + _hours(9)).alias("s"),
    ).withColumn(
        "e",
        F.when(F.col("visit_concept_id") == 9201, F.col("s") + _days(F.lit(3))).otherwise(
            F.col("s") + _hours(2)
        ),
    )
    rows += _write(
        spark,
        tables.gold["visit_occurrence"],
        "visit_occurrence",
        v.select(
            "visit_occurrence_id",
            "person_id",
            "visit_concept_id",
            F.col("s").cast("date").alias("visit_start_date"),
            F.col("s").alias("visit_start_datetime"),
            F.col("e").cast("date").alias("visit_end_date"),
            F.col("e").alias("visit_end_datetime"),
            F.lit(32817).alias("visit_type_concept_id"),
        ),
    )

    def per_visit(n: int) -> DataFrame:
        k = F.explode(F.sequence(F.lit(0), F.lit(n - 1))).alias("k")
        return v.select("visit_occurrence_id", "person_id", "s", k).select(
            "*",
            (F.col("visit_occurrence_id") * 10 + F.col("k")).alias("rid"),
            (F.pmod(F.xxhash64("visit_occurrence_id", "k"), F.lit(300)) + 1000).alias("cid"),
            (F.col("s") + _hours(1)).alias("t"),
        )

    c = per_visit(3)
    rows += _write(
        spark,
        tables.gold["condition_occurrence"],
        "condition_occurrence",
        c.select(
            F.col("rid").alias("condition_occurrence_id"),
            "person_id",
            F.col("cid").alias("condition_concept_id"),
            F.col("t").cast("date").alias("condition_start_date"),
            F.lit(32817).alias("condition_type_concept_id"),
            "visit_occurrence_id",
        ),
    )
    d = per_visit(2)
    rows += _write(
        spark,
        tables.gold["drug_exposure"],
        "drug_exposure",
        d.select(
            F.col("rid").alias("drug_exposure_id"),
            "person_id",
            (F.col("cid") + 10_000).alias("drug_concept_id"),
            F.col("t").cast("date").alias("drug_exposure_start_date"),
            F.col("t").alias("drug_exposure_start_datetime"),
            F.col("t").cast("date").alias("drug_exposure_end_date"),
            F.lit(32817).alias("drug_type_concept_id"),
            F.lit(10.0).alias("quantity"),
            "visit_occurrence_id",
        ),
    )
    m = per_visit(5)
    rows += _write(
        spark,
        tables.gold["measurement"],
        "measurement",
        m.select(
            F.col("rid").alias("measurement_id"),
            "person_id",
            (F.col("cid") % 50 + 20_000).alias("measurement_concept_id"),
            F.col("t").cast("date").alias("measurement_date"),
            F.col("t").alias("measurement_datetime"),
            F.lit(32817).alias("measurement_type_concept_id"),
            (F.pmod(F.col("rid"), F.lit(97)) / 10.0).alias("value_as_number"),
            "visit_occurrence_id",
        ),
    )
    pr = per_visit(1)
    rows += _write(
        spark,
        tables.gold["procedure_occurrence"],
        "procedure_occurrence",
        pr.select(
            F.col("rid").alias("procedure_occurrence_id"),
            "person_id",
            (F.col("cid") + 30_000).alias("procedure_concept_id"),
            F.col("t").cast("date").alias("procedure_date"),
            F.lit(32817).alias("procedure_type_concept_id"),
            "visit_occurrence_id",
        ),
    )
    rows += _write(spark, tables.gold["observation"], "observation", p.limit(0))
    rows += _write(
        spark,
        tables.gold["death"],
        "death",
        p.where(F.col("person_id") % 100 == 0).select(
            "person_id", F.lit("2030-01-01").cast("date").alias("death_date")
        ),
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_features", description=__doc__)
    parser.add_argument("--persons", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--visits", type=int, default=6)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_features_"))
    overrides: dict[str, object] = {
        "data_dir": work / "var",
        "metastore": {"kind": "in-memory"},
        "spark": {"master": "local[2]", "shuffle_partitions": 4, "ui_enabled": False},
    }
    cfg = Settings(**overrides)  # type: ignore[arg-type]
    spark = build_spark(cfg)
    try:
        for n in args.persons:
            tables = FeatureTables.suffixed(f"bench{n}")
            t0 = time.perf_counter()
            rows = generate(spark, tables, n, args.visits)
            gen_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = build_features(spark, cfg, tables=tables)
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = build_features(spark, cfg, tables=tables)
            rebuild_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            exported = export_meds(spark, work / f"meds{n}", tables=tables)
            export_s = time.perf_counter() - t0
            print(
                f"persons={n} gold_rows={rows} (generated in {gen_s:.1f}s)\n"
                f"  build:   {build_s:.1f}s  {rows / build_s:,.0f} gold rows/s  "
                f"outputs {report.output_rows}\n"
                f"  rebuild: {rebuild_s:.1f}s  (unchanged gold; rows rewritten "
                f"{sum(again.updated.values()) + sum(again.inserted.values())})\n"
                f"  export-meds: {export_s:.1f}s  {exported.events:,} events "
                f"({exported.events / export_s:,.0f} events/s)",
                flush=True,
            )
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
