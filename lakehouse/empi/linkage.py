"""Candidate pairs by blocking, and their scores under the linkage model (Spark).

Incremental: only pairs with at least one new or changed record are formed, by joining
those records to every active record on each blocking key (``model.BLOCKING_KEYS``). A key
value shared by more than ``max_block_size`` active records (a placeholder phone, a dummy
ID) forms no pairs, so one bad value cannot make a block quadratic.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.empi.features import FEATURE_COLUMNS
from lakehouse.empi.model import BLOCKING_KEYS, Model, match_weight, probability


def _ordered(a: Column, b: Column) -> tuple[Column, Column]:
    return F.least(a, b).alias("record_key_l"), F.greatest(a, b).alias("record_key_r")


def candidate_pairs(new: DataFrame, active: DataFrame, *, max_block_size: int) -> DataFrame:
    """Distinct (record_key_l < record_key_r) pairs of a ``new`` record and an ``active`` one
    (``new`` is part of ``active``) that agree on all columns of some blocking key."""
    found = []
    for key in BLOCKING_KEYS:
        cols = list(key)
        present = reduce(
            lambda acc, c: acc & F.col(c).isNotNull(), cols[1:], F.col(cols[0]).isNotNull()
        )
        others = active.where(present).select(F.col("record_key").alias("other"), *cols)
        small = others.groupBy(*cols).count().where(F.col("count") <= max_block_size).drop("count")
        mine = new.where(present).select("record_key", *cols).join(small, cols)
        pairs = mine.join(others, cols).where(F.col("record_key") != F.col("other"))
        found.append(pairs.select(*_ordered(F.col("record_key"), F.col("other"))))
    return reduce(DataFrame.unionByName, found).distinct()


def score_pairs(pairs: DataFrame, features: DataFrame, model: Model) -> DataFrame:
    """(record_key_l, record_key_r, match_weight, match_probability) of ``pairs``."""
    left = features.select(*[F.col(c).alias(f"{c}_l") for c in FEATURE_COLUMNS])
    right = features.select(*[F.col(c).alias(f"{c}_r") for c in FEATURE_COLUMNS])
    weight = match_weight(model)
    return (
        pairs.join(left, "record_key_l")
        .join(right, "record_key_r")
        .select("record_key_l", "record_key_r", weight.alias("match_weight"))
        .withColumn("match_probability", probability(F.col("match_weight")))
    )


def pair_id(key_l: Column, key_r: Column) -> Column:
    """Id of an (ordered) record pair: first 16 hex digits of sha256 of both keys."""
    return F.substring(F.sha2(F.concat_ws("\u0001", key_l, key_r), 256), 1, 16)
