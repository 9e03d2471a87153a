"""``map_codes``: source codes to standard concepts, on a date, without changing row counts.

Per distinct (vocabulary, code, date) key of the input:

1. the concept versions of the code (``vocab.concept``); a version is *valid on* a date
   when ``valid_start_date <= date <= valid_end_date``;
2. ``standard``: a version valid on the date has ``standard_concept = 'S'``;
3. ``mapped``: otherwise, a map valid on the date: a ``vocab.source_to_concept_map`` row
   (priority 1) or a ``Maps to`` relationship of the code's concept (priority 2). Several
   targets: the lowest priority, then the latest ``valid_start_date``, then the smallest
   ``target_concept_id`` (deterministic);
4. ``invalid``: otherwise, the code exists but no version of it is valid on the date;
5. ``unmapped``: otherwise (unknown code, a valid code without a map, a null code).

The keys are resolved once and joined back (null-safe) to the input, so each input row
gets exactly one answer. The vocabulary tables are small next to clinical data and are
broadcast by default; pass ``vocabularies`` to prune them when a full Athena release is
loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.tables.vocab.concepts import (
    CONCEPT,
    CONCEPT_RELATIONSHIP,
    SOURCE_TO_CONCEPT_MAP,
)
from lakehouse.terminology.store import ensure_vocab_tables

MAP_STATUSES = ("standard", "mapped", "invalid", "unmapped")


def _valid_on(d: Column, prefix: str = "") -> Column:
    return (F.col(f"{prefix}valid_start_date") <= d) & (d <= F.col(f"{prefix}valid_end_date"))


def map_codes(
    spark: SparkSession,
    df: DataFrame,
    *,
    code: Column,
    vocabulary: Column,
    on_date: Column | None = None,
    prefix: str,
    vocabularies: Sequence[str] | None = None,
    broadcast: bool = True,
) -> DataFrame:
    """Add ``{prefix}concept_id`` (long), ``{prefix}standard_code``,
    ``{prefix}standard_vocabulary``, ``{prefix}standard_name``, ``{prefix}source_concept_id``
    (the code's own concept, when it has one) and ``{prefix}map_status`` (``standard``,
    ``mapped``, ``invalid`` or ``unmapped``; see the module docstring).

    ``code`` is matched as written after trimming (E11.900, 2345-7, JY1001); ``vocabulary``
    holds vocabulary ids (:func:`~lakehouse.terminology.vocabularies.vocabulary_of` turns
    system URIs into them); ``on_date`` defaults to today.
    """
    ensure_vocab_tables(spark)
    t = f"__{prefix}m_"
    day = (on_date if on_date is not None else F.current_date()).cast("date")
    base = df.withColumns(
        {
            f"{t}vocab": F.trim(vocabulary.cast("string")),
            f"{t}code": F.trim(code.cast("string")),
            f"{t}day": day,
        }
    )
    keys = base.select(f"{t}vocab", f"{t}code", f"{t}day").distinct()

    def small(frame: DataFrame) -> DataFrame:
        return F.broadcast(frame) if broadcast else frame

    concept = spark.table(CONCEPT.name)
    if vocabularies is not None:
        concept_src = concept.where(F.col("vocabulary_id").isin(*vocabularies))
    else:
        concept_src = concept
    versions = small(
        concept_src.select(
            F.col("vocabulary_id").alias(f"{t}vocab"),
            F.col("concept_code").alias(f"{t}code"),
            F.col("concept_id").alias("c_id"),
            F.col("standard_concept").alias("c_std"),
            F.col("valid_start_date").alias("c_valid_start_date"),
            F.col("valid_end_date").alias("c_valid_end_date"),
        )
    )
    k = F.col(f"{t}day")
    per_key = (
        keys.join(versions, [f"{t}vocab", f"{t}code"], "left")
        .withColumn("c_valid", F.coalesce(_valid_on(k, "c_"), F.lit(False)))
        .groupBy(f"{t}vocab", f"{t}code", f"{t}day")
        .agg(
            F.max(F.col("c_id").isNotNull()).alias("exists"),
            F.min(F.when(F.col("c_valid") & (F.col("c_std") == "S"), F.col("c_id"))).alias(
                "std_id"
            ),
            # the code's own concept: the one valid on the day, else its latest version
            F.coalesce(
                F.min(F.when(F.col("c_valid"), F.col("c_id"))),
                F.max_by(F.col("c_id"), F.col("c_valid_start_date")),
            ).alias("source_id"),
        )
    )
    stcm = spark.table(SOURCE_TO_CONCEPT_MAP.name).select(
        F.col("source_vocabulary_id").alias(f"{t}vocab"),
        F.col("source_code").alias(f"{t}code"),
        F.col("target_concept_id").alias("m_target"),
        F.lit(1).alias("m_priority"),
        F.col("valid_start_date").alias("m_valid_start_date"),
        F.col("valid_end_date").alias("m_valid_end_date"),
    )
    rel = spark.table(CONCEPT_RELATIONSHIP.name).where(F.col("relationship_id") == "Maps to")
    rel_maps = rel.join(
        concept_src.select(
            F.col("concept_id").alias("concept_id_1"),
            F.col("vocabulary_id").alias(f"{t}vocab"),
            F.col("concept_code").alias(f"{t}code"),
        ).distinct(),
        "concept_id_1",
    ).select(
        f"{t}vocab",
        f"{t}code",
        F.col("concept_id_2").alias("m_target"),
        F.lit(2).alias("m_priority"),
        F.col("valid_start_date").alias("m_valid_start_date"),
        F.col("valid_end_date").alias("m_valid_end_date"),
    )
    maps = small(stcm.unionByName(rel_maps))
    best_map = (
        keys.join(maps, [f"{t}vocab", f"{t}code"])
        .where(_valid_on(k, "m_"))
        .groupBy(f"{t}vocab", f"{t}code", f"{t}day")
        .agg(
            F.min(
                F.struct(
                    F.col("m_priority"),
                    (-F.datediff(F.col("m_valid_start_date"), F.lit("1970-01-01"))).alias("age"),
                    F.col("m_target"),
                )
            )["m_target"].alias("map_id")
        )
    )
    resolved = per_key.join(best_map, [f"{t}vocab", f"{t}code", f"{t}day"], "left").withColumn(
        "target_id", F.coalesce(F.col("std_id"), F.col("map_id"))
    )
    # Names of the target: its version valid on the day, else its latest version.
    targets = small(
        concept.select(
            F.col("concept_id").alias("target_id"),
            F.col("concept_code").alias("t_code"),
            F.col("vocabulary_id").alias("t_vocab"),
            F.col("concept_name").alias("t_name"),
            F.col("valid_start_date").alias("t_valid_start_date"),
            F.col("valid_end_date").alias("t_valid_end_date"),
        )
    )
    named = (
        resolved.join(targets, "target_id", "left")
        .withColumn("t_rank", F.when(_valid_on(k, "t_"), F.lit(1)).otherwise(F.lit(0)))
        .groupBy(f"{t}vocab", f"{t}code", f"{t}day")
        .agg(
            F.first("exists").alias("exists"),
            F.first("std_id").alias("std_id"),
            F.first("map_id").alias("map_id"),
            F.first("source_id").alias("source_id"),
            F.first("target_id").alias("target_id"),
            F.max_by(
                F.struct("t_code", "t_vocab", "t_name"),
                F.struct("t_rank", "t_valid_start_date"),
            ).alias("t"),
        )
    )
    status = (
        F.when(F.col("std_id").isNotNull(), F.lit("standard"))
        .when(F.col("map_id").isNotNull(), F.lit("mapped"))
        .when(F.coalesce(F.col("exists"), F.lit(False)), F.lit("invalid"))
        .otherwise(F.lit("unmapped"))
    )
    answer = named.select(
        F.col(f"{t}vocab").alias(f"{t}k_vocab"),
        F.col(f"{t}code").alias(f"{t}k_code"),
        F.col(f"{t}day").alias(f"{t}k_day"),
        F.col("target_id").cast("long").alias(f"{prefix}concept_id"),
        F.col("t.t_code").alias(f"{prefix}standard_code"),
        F.col("t.t_vocab").alias(f"{prefix}standard_vocabulary"),
        F.col("t.t_name").alias(f"{prefix}standard_name"),
        F.col("source_id").cast("long").alias(f"{prefix}source_concept_id"),
        status.alias(f"{prefix}map_status"),
    )
    joined = base.join(
        answer,
        F.col(f"{t}vocab").eqNullSafe(F.col(f"{t}k_vocab"))
        & F.col(f"{t}code").eqNullSafe(F.col(f"{t}k_code"))
        & F.col(f"{t}day").eqNullSafe(F.col(f"{t}k_day")),
        "left",
    )
    return joined.drop(*[c for c in joined.columns if c.startswith(t)])
