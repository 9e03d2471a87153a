"""The OMOP standardized vocabulary tables of gold, from the terminology service.

``vocab.*`` keeps every version of a concept (ADR 0011: one row per edition, closed by
validity dates); OMOP keeps one row per concept. Gold takes each concept's newest version
(its validity dates and invalid_reason say whether it is still valid) and adds the core
concepts the CDM fields need (:mod:`lakehouse.gold.concepts`). Pure DataFrame functions:
the job writes them.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from lakehouse.gold.concepts import (
    CORE_CONCEPTS,
    CORE_DOMAINS,
    CORE_VOCABULARIES,
    VALID_END,
    VALID_START,
)

_CONCEPT_COLS = (
    "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
    "standard_concept", "concept_code", "valid_start_date", "valid_end_date", "invalid_reason",
)  # fmt: skip


def _newest(df: DataFrame, keys: list[str]) -> DataFrame:
    w = Window.partitionBy(*keys).orderBy(
        F.col("valid_start_date").desc_nulls_last(), F.col("edition").desc()
    )
    return df.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def core_concepts(spark: SparkSession) -> DataFrame:
    rows = [
        (
            c.concept_id,
            c.concept_name,
            c.domain_id,
            c.vocabulary_id,
            c.concept_class_id,
            "S" if c.standard else None,
            c.concept_code,
            VALID_START,
            VALID_END,
            None,
        )
        for c in CORE_CONCEPTS
    ]
    return spark.createDataFrame(
        rows,
        "concept_id long, concept_name string, domain_id string, vocabulary_id string, "
        "concept_class_id string, standard_concept string, concept_code string, "
        "valid_start_date date, valid_end_date date, invalid_reason string",
    )


def concept(spark: SparkSession, vocab_concept: DataFrame) -> DataFrame:
    """One row per concept: the terminology service's newest version, plus core concepts
    (an Athena-loaded concept with a core id wins over the built-in row)."""
    loaded = _newest(vocab_concept, ["concept_id"]).select(
        "concept_id",
        F.coalesce("concept_name", "concept_name_zh", "concept_code").alias("concept_name"),
        F.coalesce("domain_id", F.lit("Metadata")).alias("domain_id"),
        "vocabulary_id",
        F.coalesce("concept_class_id", F.lit("Undefined")).alias("concept_class_id"),
        "standard_concept",
        "concept_code",
        F.coalesce("valid_start_date", F.lit(VALID_START)).alias("valid_start_date"),
        F.coalesce("valid_end_date", F.lit(VALID_END)).alias("valid_end_date"),
        "invalid_reason",
    )
    core = core_concepts(spark).join(loaded.select("concept_id"), "concept_id", "left_anti")
    return loaded.unionByName(core).select(*_CONCEPT_COLS)


def concept_relationship(vocab_rel: DataFrame) -> DataFrame:
    return _newest(vocab_rel, ["concept_id_1", "concept_id_2", "relationship_id"]).select(
        "concept_id_1",
        "concept_id_2",
        "relationship_id",
        F.coalesce("valid_start_date", F.lit(VALID_START)).alias("valid_start_date"),
        F.coalesce("valid_end_date", F.lit(VALID_END)).alias("valid_end_date"),
        "invalid_reason",
    )


def concept_ancestor(vocab_anc: DataFrame) -> DataFrame:
    return vocab_anc.select(
        "ancestor_concept_id",
        "descendant_concept_id",
        "min_levels_of_separation",
        "max_levels_of_separation",
    ).dropDuplicates(["ancestor_concept_id", "descendant_concept_id"])


def source_to_concept_map(vocab_stcm: DataFrame) -> DataFrame:
    """Every version of every map (OMOP keeps versions apart by their validity dates)."""
    keys = ["source_code", "source_vocabulary_id", "target_concept_id", "valid_end_date"]
    out = vocab_stcm.select(
        "source_code",
        F.coalesce("source_concept_id", F.lit(0)).alias("source_concept_id"),
        "source_vocabulary_id",
        "source_code_description",
        "target_concept_id",
        "target_vocabulary_id",
        F.coalesce("valid_start_date", F.lit(VALID_START)).alias("valid_start_date"),
        F.coalesce("valid_end_date", F.lit(VALID_END)).alias("valid_end_date"),
        "invalid_reason",
        "edition",
    )
    w = Window.partitionBy(*keys).orderBy(F.col("edition").desc())
    return out.withColumn("_r", F.row_number().over(w)).where("_r = 1").drop("_r", "edition")


def vocabulary(spark: SparkSession, vocab_vocabulary: DataFrame, concepts: DataFrame) -> DataFrame:
    """One row per vocabulary: its newest edition is its version; every vocabulary a
    concept names gets a row (vocabulary_concept_id 0: no concept describes it here)."""
    newest = (
        vocab_vocabulary.withColumn(
            "_r",
            F.row_number().over(
                Window.partitionBy("vocabulary_id").orderBy(F.col("valid_from").desc())
            ),
        )
        .where("_r = 1")
        .select(
            "vocabulary_id",
            F.coalesce("vocabulary_name", "vocabulary_id").alias("vocabulary_name"),
            F.col("edition").alias("vocabulary_version"),
        )
    )
    named = concepts.select("vocabulary_id").distinct()
    core = spark.createDataFrame([(v,) for v in CORE_VOCABULARIES], "vocabulary_id string")
    every = named.unionByName(core).distinct()
    return every.join(newest, "vocabulary_id", "left").select(
        "vocabulary_id",
        F.coalesce("vocabulary_name", "vocabulary_id").alias("vocabulary_name"),
        F.lit(None).cast("string").alias("vocabulary_reference"),
        "vocabulary_version",
        F.lit(0).cast("long").alias("vocabulary_concept_id"),
    )


def domain(spark: SparkSession, concepts: DataFrame) -> DataFrame:
    core = spark.createDataFrame([(d,) for d in CORE_DOMAINS], "domain_id string")
    return (
        concepts.select("domain_id")
        .unionByName(core)
        .distinct()
        .select(
            "domain_id",
            F.col("domain_id").alias("domain_name"),
            F.lit(0).cast("long").alias("domain_concept_id"),
        )
    )


def concept_class(concepts: DataFrame) -> DataFrame:
    return (
        concepts.select("concept_class_id")
        .distinct()
        .select(
            "concept_class_id",
            F.col("concept_class_id").alias("concept_class_name"),
            F.lit(0).cast("long").alias("concept_class_concept_id"),
        )
    )


def relationship(rels: DataFrame) -> DataFrame:
    """Every relationship id in use; reverse ids for the two OMOP always pairs."""
    reverse = F.create_map(
        F.lit("Maps to"), F.lit("Mapped from"), F.lit("Is a"), F.lit("Subsumes"),
        F.lit("Mapped from"), F.lit("Maps to"), F.lit("Subsumes"), F.lit("Is a"),
    )  # fmt: skip
    return (
        rels.select("relationship_id")
        .distinct()
        .select(
            "relationship_id",
            F.col("relationship_id").alias("relationship_name"),
            F.when(F.col("relationship_id") == "Is a", "1").otherwise("0").alias("is_hierarchical"),
            F.when(F.col("relationship_id") == "Is a", "1")
            .otherwise("0")
            .alias("defines_ancestry"),
            F.coalesce(reverse[F.col("relationship_id")], F.col("relationship_id")).alias(
                "reverse_relationship_id"
            ),
            F.lit(0).cast("long").alias("relationship_concept_id"),
        )
    )


def concept_synonym(vocab_syn: DataFrame) -> DataFrame:
    """Synonyms; language as OMOP concept ids is not known here (0)."""
    return vocab_syn.select(
        "concept_id",
        "concept_synonym_name",
        F.lit(0).cast("long").alias("language_concept_id"),
    ).dropDuplicates(["concept_id", "concept_synonym_name"])
