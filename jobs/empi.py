"""EMPI: link new and changed silver.patient records into persons with stable ids.

Reads the silver.patient changes since the version in ``ops.empi_progress`` (Delta change
data feed; the whole table on a first run or with ``--full``), updates their comparison
features (silver.person_features), blocks and scores them against every active record,
and assigns persons incrementally (lakehouse/empi/clusters.py): new persons get new ids,
links into one person keep its id, merges keep the oldest person's id and record the
retired one in silver.person_history. Reviewers' decisions in silver.person_review are
applied ('same' links, 'different' is a must-not-link constraint and splits), and pairs in
the uncertain band are queued. docs/empi.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from lakehouse.empi import clusters, features, linkage, model, review
from lakehouse.empi.evaluate import PairScores, pairwise_scores, patients_from_truth, truth_keys
from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.tables.silver.patient import PATIENT
from lakehouse.tables.silver.person_index import (
    EMPI_PROGRESS,
    PERSON_FEATURES,
    PERSON_HISTORY,
    PERSON_INDEX,
    PERSON_REVIEW,
)
from lakehouse.tables.versions import require_version
from lakehouse.tables.writer import ensure_tables, upsert

logger = logging.getLogger(__name__)


@dataclass
class EmpiReport:
    """What one run did."""

    run_id: str
    model_version: str
    match_threshold: float
    review_threshold: float
    mode: str = "unchanged"
    from_version: int | None = None
    to_version: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    lap_at: float = field(default_factory=time.perf_counter)


def _rkey(df: DataFrame) -> Column:
    return features.record_key(df["institution_code"], df["source_system"], df["patient_id"])


def _read(spark: SparkSession, table: str, last: int | None, version: int) -> tuple[DataFrame, str]:
    """Rows of ``table`` changed after ``last`` up to ``version`` (all when None), newest
    version per key."""
    snapshot = spark.sql(f"SELECT * FROM {table} VERSION AS OF {int(version)}")  # noqa: S608
    if last is None:
        return snapshot, "snapshot"
    try:
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", last + 1)
            .option("endingVersion", version)
            .table(table)
        )
        changes.schema  # noqa: B018 - a feed across a schema change fails here
    except AnalysisException:
        logger.warning("empi: change feed of %s unreadable from %d; reading the table", table, last)
        return snapshot, "snapshot"
    newest = Window.partitionBy(*PATIENT.keys).orderBy(F.desc("_commit_version"))
    rows = (
        changes.where(F.col("_change_type").isin("insert", "update_postimage"))
        .withColumn("_rank", F.row_number().over(newest))
        .where("_rank = 1")
        .drop("_rank", "_change_type", "_commit_version", "_commit_timestamp")
    )
    return rows, "changes"


def run(
    spark: SparkSession, cfg: Settings, *, source_table: str = PATIENT.name, full: bool = False
) -> EmpiReport:
    """Link the changes of ``source_table`` (silver.patient-shaped) into the person index."""
    e = cfg.empi
    if e.review_threshold >= e.match_threshold:
        raise error(
            ErrorCode.CONFIG_INVALID,
            setting="empi.review_threshold",
            reason="it must be below empi.match_threshold",
        )
    mdl = model.load(e.model_path)
    if not spark.catalog.tableExists(source_table):
        raise error(ErrorCode.EMPI_NO_INPUT, table=source_table)
    t0 = time.perf_counter()
    with job_run(spark, cfg, "empi") as rec:
        rep = EmpiReport(rec.run_id, mdl.version, e.match_threshold, e.review_threshold)
        ensure_tables(
            spark, [PERSON_INDEX, PERSON_HISTORY, PERSON_REVIEW, PERSON_FEATURES, EMPI_PROGRESS]
        )
        done = spark.table(EMPI_PROGRESS.name).where(F.col("source_table") == source_table).first()
        last = None if full or done is None else done["last_version"]
        version = require_version(spark, source_table)
        rep.from_version, rep.to_version = last, version
        if last is not None and last >= version:
            batch = spark.table(source_table).limit(0)
        else:
            batch, rep.mode = _read(spark, source_table, last, version)
        _link(spark, cfg, mdl, batch, rep)
        progress = spark.createDataFrame(
            [
                (
                    source_table,
                    version,
                    rep.run_id,
                    mdl.version,
                    e.match_threshold,
                    e.review_threshold,
                    rep.counts.get("records_read", 0),
                )
            ],
            "source_table string, last_version long, run_id string, model_version string, "
            "match_threshold double, review_threshold double, records long",
        ).withColumn("updated_at", F.current_timestamp())
        upsert(spark, EMPI_PROGRESS, progress)
        for name, value in rep.counts.items():
            rec.count(name, value)
    rep.duration_s = time.perf_counter() - t0
    return rep


def _link(
    spark: SparkSession, cfg: Settings, mdl: model.Model, batch: DataFrame, rep: EmpiReport
) -> None:
    e = cfg.empi
    run_id = rep.run_id
    feats = features.prepare(batch.select(*features.INPUT_COLUMNS)).localCheckpoint()
    rep.counts["records_read"] = feats.count()
    undecided = review.queue(spark).where(
        F.col("status").isin(*review.DECISIONS) & F.col("applied_run_id").isNull()
    )
    if rep.counts["records_read"] == 0 and undecided.limit(1).count() == 0:
        return  # nothing changed and no decision waits: the index stands as it is
    if rep.counts["records_read"]:
        upsert(spark, PERSON_FEATURES, feats)
    _lap(rep, "features")
    active = spark.table(PERSON_FEATURES.name).where(~F.col("is_deleted"))
    fresh = feats.where(~F.col("is_deleted"))

    pairs = linkage.candidate_pairs(fresh, active, max_block_size=e.max_block_size)
    scored = linkage.score_pairs(pairs, active, mdl).localCheckpoint()
    rep.counts["pairs_scored"] = scored.count()
    _lap(rep, "scoring")

    same_mrn = (
        fresh.select("record_key", "patient_key")
        .join(active.select(F.col("record_key").alias("other"), "patient_key"), "patient_key")
        .where(F.col("record_key") != F.col("other"))
        .select(
            F.least("record_key", "other").alias("record_key_l"),
            F.greatest("record_key", "other").alias("record_key_r"),
            F.lit(1.0).alias("match_probability"),
            F.lit("same_mrn").alias("link_rule"),
        )
    )
    decided_same = review.decisions(spark, "same").where(F.col("applied_run_id").isNull())
    different = review.decisions(spark, "different")
    edges = (
        scored.where(F.col("match_probability") >= e.match_threshold)
        .select(
            "record_key_l", "record_key_r", "match_probability", F.lit("model").alias("link_rule")
        )
        .unionByName(same_mrn)
        .unionByName(
            decided_same.select(
                "record_key_l",
                "record_key_r",
                F.lit(1.0).alias("match_probability"),
                F.lit("review").alias("link_rule"),
            )
        )
    )
    index_rows = spark.table(PERSON_INDEX.name)
    index = index_rows.select(
        _rkey(index_rows).alias("record_key"), "person_id", "first_linked_at"
    ).localCheckpoint()
    new_keys = fresh.select("record_key").join(index, "record_key", "left_anti")
    result = clusters.assign(
        index, new_keys, edges, different.select("record_key_l", "record_key_r")
    )

    now = F.current_timestamp()
    keys = feats.select(
        "record_key", "institution_code", "source_system", "patient_id", "patient_key", "is_deleted"
    )
    added = result.records.join(keys, "record_key").select(
        "institution_code",
        "source_system",
        "patient_id",
        "patient_key",
        "person_id",
        "match_probability",
        "link_rule",
        F.lit(mdl.version).alias("model_version"),
        F.lit(run_id).alias("linked_run_id"),
        now.alias("first_linked_at"),
        now.alias("linked_at"),
        "is_deleted",
    )
    stored = index_rows.withColumn("record_key", _rkey(index_rows))
    moved = (
        stored.drop("person_id")
        .join(result.moved, "record_key")
        .withColumn("link_rule", F.lit("merge"))
        .withColumn("linked_run_id", F.lit(run_id))
        .withColumn("linked_at", now)
        .drop("record_key")
    )
    deleted_keys = feats.where("is_deleted").select("record_key")
    deleted = (
        stored.join(deleted_keys, "record_key")
        .join(result.moved.select("record_key"), "record_key", "left_anti")
        .withColumn("is_deleted", F.lit(True))
        .drop("record_key")
    )
    changes = added.unionByName(moved).unionByName(deleted).localCheckpoint()
    _lap(rep, "clustering")
    rep.counts["records_linked"] = added.count()
    if changes.limit(1).count():
        upsert(spark, PERSON_INDEX, changes)
    _lap(rep, "index")

    created = (
        result.records.join(index.select("person_id").distinct(), "person_id", "left_anti")
        .groupBy("person_id")
        .agg(F.count(F.lit(1)).alias("records_moved"))
        .select(
            F.lit("created").alias("event"),
            "person_id",
            F.lit(None).cast("string").alias("other_person_id"),
            "records_moved",
            F.lit("new records").alias("reason"),
        )
    )
    merged = result.merges.select(
        F.lit("merged").alias("event"),
        "person_id",
        "other_person_id",
        "records_moved",
        F.lit("linked by new or changed records or a review decision").alias("reason"),
    )
    splits = _splits(spark, different.where(F.col("applied_run_id").isNull()), run_id)
    events = created.unionByName(merged).unionByName(splits).localCheckpoint()
    counts = {r["event"]: r["count"] for r in events.groupBy("event").count().collect()}
    rep.counts["persons_created"] = int(counts.get("created", 0))
    rep.counts["persons_merged"] = int(counts.get("merged", 0))
    rep.counts["persons_split"] = int(counts.get("split", 0))
    if counts:
        history = events.select(
            F.substring(
                F.sha2(
                    F.concat_ws(
                        "|",
                        F.lit(run_id),
                        "event",
                        "person_id",
                        F.coalesce("other_person_id", F.lit("")),
                    ),
                    256,
                ),
                1,
                32,
            ).alias("event_id"),
            "event",
            "person_id",
            "other_person_id",
            F.col("records_moved").cast("long").alias("records_moved"),
            F.lit(run_id).alias("run_id"),
            "reason",
            now.alias("at"),
        )
        upsert(spark, PERSON_HISTORY, history)

    _lap(rep, "history")
    rep.counts["pairs_queued"] = _queue(spark, scored, cfg, mdl, run_id)
    applied = (
        review.queue(spark)
        .where(F.col("status").isin(*review.DECISIONS) & F.col("applied_run_id").isNull())
        .withColumn("applied_run_id", F.lit(run_id))
    )
    rep.counts["decisions_applied"] = applied.count()
    if rep.counts["decisions_applied"]:
        upsert(spark, PERSON_REVIEW, applied)
    _lap(rep, "review")


def _lap(rep: EmpiReport, phase: str) -> None:
    now = time.perf_counter()
    rep.phases[phase] = round(now - rep.lap_at, 1)
    rep.lap_at = now
    logger.info("empi %s: %s done in %.1fs", rep.run_id, phase, rep.phases[phase])


def _splits(spark: SparkSession, different: DataFrame, run_id: str) -> DataFrame:
    """Split pairs a reviewer called 'different' that are one person: the record that entered
    the index later (with its same-MRN siblings in that person) moves to a new person."""
    rows = spark.table(PERSON_INDEX.name)
    index = rows.select(
        _rkey(rows).alias("record_key"), "person_id", "patient_key", "first_linked_at"
    )
    left = index.select(*[F.col(c).alias(f"{c}_l") for c in index.columns])
    right = index.select(*[F.col(c).alias(f"{c}_r") for c in index.columns])
    together = (
        different.join(left, "record_key_l")
        .join(right, "record_key_r")
        .where(F.col("person_id_l") == F.col("person_id_r"))
    )
    later_is_r = (F.col("first_linked_at_r") > F.col("first_linked_at_l")) | (
        (F.col("first_linked_at_r") == F.col("first_linked_at_l"))
        & (F.col("record_key_r") > F.col("record_key_l"))
    )
    leaving = together.select(
        "pair_id",
        F.col("person_id_l").alias("old_person"),
        F.when(later_is_r, F.col("patient_key_r"))
        .otherwise(F.col("patient_key_l"))
        .alias("patient_key"),
        F.when(later_is_r, F.col("record_key_r")).otherwise(F.col("record_key_l")).alias("seed"),
    ).dropDuplicates(["old_person", "patient_key"])
    moved = (
        index.join(
            leaving,
            (index.person_id == leaving.old_person) & (index.patient_key == leaving.patient_key),
        )
        .select(
            "record_key",
            "old_person",
            clusters.new_person_id(F.concat_ws("|", "seed", F.lit("split"), "pair_id")).alias(
                "person_id"
            ),
            "pair_id",
        )
        .localCheckpoint()
    )
    if moved.limit(1).count():
        stored = rows.withColumn("record_key", _rkey(rows))
        updates = (
            stored.drop("person_id")
            .join(moved.select("record_key", "person_id"), "record_key")
            .withColumn("link_rule", F.lit("split"))
            .withColumn("match_probability", F.lit(1.0))
            .withColumn("linked_run_id", F.lit(run_id))
            .withColumn("linked_at", F.current_timestamp())
            .drop("record_key")
        )
        upsert(spark, PERSON_INDEX, updates)
    return (
        moved.groupBy("person_id", "old_person", "pair_id")
        .agg(F.count(F.lit(1)).alias("records_moved"))
        .select(
            F.lit("split").alias("event"),
            "person_id",
            F.col("old_person").alias("other_person_id"),
            "records_moved",
            F.concat(F.lit("review 'different' of pair "), "pair_id").alias("reason"),
        )
    )


def _queue(
    spark: SparkSession, scored: DataFrame, cfg: Settings, mdl: model.Model, run_id: str
) -> int:
    """Queue uncertain pairs that are not one person and were never queued; returns count."""
    e = cfg.empi
    rows = spark.table(PERSON_INDEX.name)
    person = rows.select(_rkey(rows).alias("record_key"), "person_id")
    band = scored.where(
        (F.col("match_probability") >= e.review_threshold)
        & (F.col("match_probability") < e.match_threshold)
    )
    pairs = (
        band.join(person.toDF("record_key_l", "person_id_l"), "record_key_l")
        .join(person.toDF("record_key_r", "person_id_r"), "record_key_r")
        .where(F.col("person_id_l") != F.col("person_id_r"))
        .withColumn("pair_id", linkage.pair_id(F.col("record_key_l"), F.col("record_key_r")))
        .join(review.queue(spark).select("pair_id"), "pair_id", "left_anti")
        .select(
            "pair_id",
            "record_key_l",
            "record_key_r",
            "person_id_l",
            "person_id_r",
            "match_probability",
            "match_weight",
            F.lit(mdl.version).alias("model_version"),
            F.lit("pending").alias("status"),
            F.lit(run_id).alias("queued_run_id"),
            F.current_timestamp().alias("queued_at"),
        )
        .localCheckpoint()
    )
    n = pairs.count()
    if n:
        upsert(spark, PERSON_REVIEW, pairs)
    return n


def describe(report: EmpiReport) -> str:
    counts = " ".join(f"{k}={v}" for k, v in sorted(report.counts.items()))
    return (
        f"empi run {report.run_id}: {report.mode} {report.from_version}->{report.to_version} "
        f"model={report.model_version} match>={report.match_threshold} "
        f"review>={report.review_threshold} | {counts} | {report.duration_s:.1f}s {report.phases}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.empi [--full]``."""
    parser = argparse.ArgumentParser(prog="jobs.empi", description=__doc__)
    parser.add_argument("--full", action="store_true", help="relink every silver.patient row")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    return run_entrypoint(lambda cfg: describe(run(build_spark(cfg), cfg, full=args.full)))


if __name__ == "__main__":
    raise SystemExit(main())


def train(
    spark: SparkSession, cfg: Settings, out: Path, *, source_table: str = PATIENT.name
) -> str:
    """Estimate a new model from ``source_table`` with Splink and write it to ``out``.

    The DuckDB backend takes a bounded sample (``empi.training_sample`` records) to the
    driver; the Spark backend trains on the whole table. Point ``empi.model_path`` at the
    file to use it; its version is the file name plus a content hash.
    """
    if not spark.catalog.tableExists(source_table):
        raise error(ErrorCode.EMPI_NO_INPUT, table=source_table)
    feats = (
        features.prepare(spark.table(source_table).select(*features.INPUT_COLUMNS))
        .where(~F.col("is_deleted"))
        .select(*features.FEATURE_COLUMNS)
    )
    if cfg.empi.training_backend == "spark":
        trained = model.train(feats, backend="spark", spark=spark)
    else:
        sample = feats.limit(cfg.empi.training_sample).toPandas()
        trained = model.train(sample)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(trained, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return f"model written to {out} ({model.load(out).version})"


def score_against_truth(spark: SparkSession, truth: Path) -> PairScores:
    """Pairwise precision/recall of silver.person_index against a synthetic truth folder."""
    rows = spark.table(PERSON_INDEX.name)
    index = rows.where(~F.col("is_deleted")).select("patient_key", "person_id")
    return pairwise_scores(index, truth_keys(patients_from_truth(spark, truth)))


def describe_scores(s: PairScores) -> str:
    return (
        f"pairwise precision {s.precision:.4f} recall {s.recall:.4f} "
        f"(index pairs {s.predicted_pairs}, true pairs {s.true_pairs}, both {s.correct_pairs})"
    )
