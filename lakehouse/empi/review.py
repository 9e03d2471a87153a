"""The review queue (silver.person_review): uncertain pairs and reviewers' decisions.

A pair whose probability is in [review_threshold, match_threshold) and whose records are
not (yet) one person is queued once (``pending``). A reviewer decides ``same`` or
``different``; the next EMPI run applies it: ``same`` links the two records (merging their
persons), ``different`` becomes a must-not-link constraint (never auto-merged again; split
if they already are one person). ``applied_run_id`` records the run that applied it.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.empi.linkage import pair_id
from lakehouse.errors import ErrorCode, error
from lakehouse.tables.silver.person_index import PERSON_REVIEW
from lakehouse.tables.writer import ensure_table, upsert

DECISIONS = ("same", "different")


def queue(spark: SparkSession) -> DataFrame:
    """The review table (created empty when missing)."""
    ensure_table(spark, PERSON_REVIEW)
    return spark.table(PERSON_REVIEW.name)


def pending(spark: SparkSession, *, limit: int = 50) -> list[dict[str, object]]:
    """Pending pairs, most probable first (bounded: ``limit`` rows; ids and scores only)."""
    rows = (
        queue(spark)
        .where("status = 'pending'")
        .orderBy(F.desc("match_probability"), "pair_id")
        .select("pair_id", "person_id_l", "person_id_r", "match_probability", "queued_at")
        .limit(limit)
        .collect()
    )
    return [r.asDict() for r in rows]


def decide(spark: SparkSession, pair_id: str, decision: str, reviewer: str) -> None:
    """Record a reviewer's decision on a queued pair (applied by the next EMPI run)."""
    if decision not in DECISIONS:
        raise error(
            ErrorCode.EMPI_REVIEW_BAD_DECISION, found=decision, expected=", ".join(DECISIONS)
        )
    current = queue(spark).where(F.col("pair_id") == pair_id)
    if current.limit(1).count() == 0:
        raise error(ErrorCode.EMPI_REVIEW_UNKNOWN_PAIR, key=pair_id)
    decided = current.select(
        *[
            c
            for c in PERSON_REVIEW.column_names
            if c not in ("status", "reviewer", "decided_at", "applied_run_id")
        ],
        F.lit(decision).alias("status"),
        F.lit(reviewer).alias("reviewer"),
        F.current_timestamp().alias("decided_at"),
        F.lit(None).cast("string").alias("applied_run_id"),
    )
    upsert(spark, PERSON_REVIEW, decided)


def decisions(spark: SparkSession, status: str) -> DataFrame:
    """(record_key_l, record_key_r, pair_id, applied_run_id) of pairs decided ``status``."""
    return (
        queue(spark)
        .where(F.col("status") == status)
        .select("pair_id", "record_key_l", "record_key_r", "applied_run_id")
    )


def decide_records(
    spark: SparkSession, record_key_a: str, record_key_b: str, decision: str, reviewer: str
) -> str:
    """Record a decision on any two records (queued or not: e.g. a reviewer finds two linked
    records are different people). Returns the pair id."""
    if decision not in DECISIONS:
        raise error(
            ErrorCode.EMPI_REVIEW_BAD_DECISION, found=decision, expected=", ".join(DECISIONS)
        )
    low, high = sorted((record_key_a, record_key_b))
    queued = hashlib.sha256(f"{low}\u0001{high}".encode()).hexdigest()[:16]
    if queue(spark).where(F.col("pair_id") == queued).limit(1).count():
        decide(spark, queued, decision, reviewer)
        return queued
    row = (
        spark.createDataFrame([(low, high)], "record_key_l string, record_key_r string")
        .withColumn("pair_id", pair_id(F.col("record_key_l"), F.col("record_key_r")))
        .withColumn("status", F.lit(decision))
        .withColumn("reviewer", F.lit(reviewer))
        .withColumn("decided_at", F.current_timestamp())
        .localCheckpoint()
    )
    upsert(spark, PERSON_REVIEW, row)
    first = row.select("pair_id").first()
    assert first is not None
    return str(first["pair_id"])
