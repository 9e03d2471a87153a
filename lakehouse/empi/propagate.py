"""Person ids onto other tables: how silver and gold rows learn their person.

Every silver table carries ``patient_key`` (``<institution>|<patient_id>``, the
institution-scoped patient); the index maps it to the person. Gold (and every person-level
product) reads ``person_id`` through these functions rather than storing its own copy, so a
merge or split shows up everywhere on the next read; a table that does store person_id
re-keys with :func:`retired_person_ids` (silver.person_history).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.tables.silver.person_index import PERSON_HISTORY, PERSON_INDEX


def patient_persons(spark: SparkSession) -> DataFrame:
    """(patient_key, person_id): one person per institution patient id.

    Records sharing a patient_key are linked by the same-MRN rule, so they share a person;
    should a reviewer's split ever leave two, the smallest id is taken (deterministic).
    """
    return (
        spark.table(PERSON_INDEX.name)
        .groupBy("patient_key")
        .agg(F.min("person_id").alias("person_id"))
    )


def with_person_id(df: DataFrame, persons: DataFrame) -> DataFrame:
    """``df`` (any silver table: it has patient_key) with ``person_id`` added (null when
    the patient is not in the index yet). ``persons``: :func:`patient_persons`."""
    return df.join(persons, "patient_key", "left")


def retired_person_ids(spark: SparkSession) -> DataFrame:
    """(retired_person_id, person_id): ids merged away and the person that absorbed them
    (chains followed: a person merged into one later merged again maps to the last)."""
    merges = (
        spark.table(PERSON_HISTORY.name)
        .where(F.col("event") == "merged")
        .select(F.col("other_person_id").alias("retired_person_id"), "person_id")
    )
    live = spark.table(PERSON_INDEX.name).select("person_id").distinct()
    # A survivor is always a live person unless it was merged later; resolve up to a few hops.
    resolved = merges
    for _ in range(8):
        nxt = (
            resolved.alias("a")
            .join(merges.alias("b"), F.col("a.person_id") == F.col("b.retired_person_id"), "left")
            .select(
                F.col("a.retired_person_id").alias("retired_person_id"),
                F.coalesce(F.col("b.person_id"), F.col("a.person_id")).alias("person_id"),
            )
        )
        resolved = nxt
    return resolved.join(live, "person_id").select("retired_person_id", "person_id")
