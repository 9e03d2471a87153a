"""OMOP integer ids: assigned once per (OMOP table, natural key), stable forever after.

OMOP wants integer primary keys; silver identifies records by strings
(``<institution>|<source system>|<record id>``) and the master patient index persons by
``P<16 hex>``. ``ops.omop_ids`` keeps the mapping. A key seen before keeps its id however
often gold is rebuilt; new keys get ids above the table's current maximum, dense within a
run, without a single-partition sort: each Spark partition counts its new keys, the driver
turns the (few) counts into offsets, and each partition numbers its own keys from its offset.

Two runs never assign at the same time (the gold job holds the catalog's job lock); should
they, the MERGE on (omop_table, natural_key) keeps one id per key and the later run's
duplicates are never inserted.
"""

from __future__ import annotations

from itertools import accumulate

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from lakehouse.tables.ops.gold import OMOP_IDS
from lakehouse.tables.writer import ensure_table, upsert


def natural_key(*parts: str | Column) -> Column:
    """``a|b|c`` from columns (names or expressions): the form every natural key takes."""
    return F.concat_ws("|", *[F.col(p) if isinstance(p, str) else p for p in parts])


def ids_of(spark: SparkSession, omop_table: str) -> DataFrame:
    """``(natural_key, omop_id)`` of every id assigned in ``omop_table``."""
    return (
        spark.table(OMOP_IDS.name)
        .where(F.col("omop_table") == omop_table)
        .select("natural_key", "omop_id")
    )


def assign_ids(
    spark: SparkSession,
    omop_table: str,
    keys: DataFrame,
    *,
    run_id: str,
    partitions: int = 8,
) -> DataFrame:
    """Ids for the distinct ``natural_key`` values of ``keys``: existing ones kept, new ones
    assigned and recorded. Returns ``(natural_key, omop_id)`` for exactly those keys."""
    ensure_table(spark, OMOP_IDS)
    wanted = keys.select("natural_key").where(F.col("natural_key").isNotNull()).distinct()
    known = ids_of(spark, omop_table)
    fresh = (
        wanted.join(known, "natural_key", "left_anti")
        .repartition(partitions, "natural_key")
        .withColumn("_part", F.spark_partition_id())
        .localCheckpoint()
    )
    counts = sorted(
        (r["_part"], r["n"]) for r in fresh.groupBy("_part").agg(F.count("*").alias("n")).collect()
    )
    if counts:
        top = known.agg(F.max("omop_id").alias("m")).first()
        base = int(top["m"]) if top is not None and top["m"] is not None else 0
        starts = [0, *accumulate(n for _, n in counts)][:-1]
        offsets = spark.createDataFrame(
            [(part, base + start) for (part, _), start in zip(counts, starts, strict=True)],
            "_part int, _offset long",
        )
        numbered = (
            fresh.join(F.broadcast(offsets), "_part")
            .withColumn(
                "omop_id",
                F.col("_offset")
                + F.row_number().over(Window.partitionBy("_part").orderBy("natural_key")),
            )
            .select(
                F.lit(omop_table).alias("omop_table"),
                "natural_key",
                F.col("omop_id").cast("long").alias("omop_id"),
                F.lit(run_id).alias("run_id"),
                F.current_timestamp().alias("assigned_at"),
            )
        )
        upsert(spark, OMOP_IDS, numbered)
    return wanted.join(ids_of(spark, omop_table), "natural_key")
