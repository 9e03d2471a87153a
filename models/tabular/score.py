"""Batch scoring: the champion of a registered model over every eligible patient, into
``gold.model_predictions`` (docs/models.md).

1. Resolve ``models:/<name>@champion`` to its version once (the alias may move while the job
   runs; every row of a run is scored by the same version, loaded as ``models:/<name>/<v>``).
2. Pin the feature table's newest Delta version and read it ``VERSION AS OF`` it.
3. Eligible: each person's newest feature row (latest index time, then highest index id).
4. Incremental: a person is scored only when no prediction of that model version exists for
   them with the same ``features_hash`` (xxhash64 of the index id and the model's inputs). A
   rerun over unchanged features scores and writes nothing.
5. Score in ``mapInArrow`` (one pyfunc load per Python worker, whole Arrow batches; no row UDF:
   pyspark 4.2.0's Arrow-optimised UDFs can hang over a Delta scan, ADR 0001). Workers load
   the model through the tracking server (proxied artifacts), so they need only its URI.
6. MERGE on (model_name, model_version, person_id).

This module is a Spark job under ``models/`` (like ``models/nlp/spark_job.py``): import-linter
keeps ``jobs`` and ``models`` independent, and the command line composes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error
from lakehouse.features.tables import latest_version, read_version
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.tables.features.ml import PATIENT_FEATURES
from lakehouse.tables.gold.predictions import MODEL_PREDICTIONS
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import upsert
from lakehouse.tracking import CHAMPION, require_server

logger = logging.getLogger(__name__)

_SCORED_SCHEMA = (
    "person_id long, index_id long, index_time timestamp, features_hash long, score double"
)
#: Rows per scoring task (at least one task; at most the default parallelism).
ROWS_PER_TASK = 50_000
#: pyfunc models loaded in this Python worker, by model URI (a worker serves many batches).
_LOADED: dict[str, Any] = {}


@dataclass(frozen=True)
class Champion:
    """The registered version the alias pointed at when the job started."""

    name: str
    version: int
    run_id: str
    features: tuple[str, ...]

    @property
    def uri(self) -> str:
        """The immutable URI of this version (not the alias)."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class ScoreReport:
    """What one scoring run did."""

    model_name: str
    model_version: int
    features_table: str
    features_version: int
    eligible: int
    scored: int
    inserted: int
    updated: int

    def counts(self) -> dict[str, int]:
        """Counts for ``ops.job_runs``."""
        return {
            "eligible": self.eligible,
            "scored": self.scored,
            "inserted": self.inserted,
            "updated": self.updated,
        }

    def describe(self) -> str:
        """One line (no patient data)."""
        return (
            f"scored {self.model_name} version {self.model_version} on "
            f"{self.features_table}@v{self.features_version}: {self.eligible} eligible, "
            f"{self.scored} scored ({self.inserted} new, {self.updated} updated)"
        )


def resolve_champion(cfg: Settings, name: str) -> Champion:
    """The version behind ``models:/<name>@champion`` and the input columns of its signature.

    LH-MDL-003 when the model or the alias does not exist; LH-MLF-004 without a server.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = require_server(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise error(ErrorCode.MODEL_NO_CHAMPION, name=name) from None
    version = int(mv.version)
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    if info.signature is None:
        raise error(
            ErrorCode.MODEL_RUN_NOT_REPRODUCIBLE, name=str(mv.run_id), reason="no signature"
        )
    features = tuple(info.signature.inputs.input_names())
    return Champion(name, version, str(mv.run_id or ""), features)


def _predict_batches(
    model_uri: str, tracking_uri: str, features: tuple[str, ...]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` body: feature batches in, (ids, hash, score) batches out."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import mlflow

        model = _LOADED.get(model_uri)
        if model is None:
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
            model = _LOADED.setdefault(model_uri, mlflow.pyfunc.load_model(model_uri))
        for batch in batches:
            if batch.num_rows == 0:
                continue
            frame = batch.select(list(features)).to_pandas()
            numeric = [
                c for c in features
                if pa.types.is_floating(batch.schema.field(c).type)
                or pa.types.is_integer(batch.schema.field(c).type)
            ]  # fmt: skip
            frame[numeric] = frame[numeric].astype("float64")  # text and images as they are
            proba = model.predict(frame)
            score = proba[:, 1] if getattr(proba, "ndim", 1) == 2 else proba
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("person_id"),
                    batch.column("index_id"),
                    batch.column("index_time"),
                    batch.column("features_hash"),
                    pa.array(score, type=pa.float64()),
                ],
                names=["person_id", "index_id", "index_time", "features_hash", "score"],
            )

    return run


def require_inputs(champion: Champion, frame: DataFrame, table: str) -> None:
    """LH-TBL-003 when ``frame`` lacks an input column of the champion."""
    missing = [c for c in champion.features if c not in frame.columns]
    if missing:
        raise error(
            ErrorCode.INPUT_SCHEMA_MISMATCH,
            table=table,
            reason="the model's input columns are missing",
            columns=", ".join(missing),
        )


def eligible_rows(
    features: DataFrame, columns: tuple[str, ...], *, raw: tuple[str, ...] = ()
) -> DataFrame:
    """Each person's newest feature row with the model's inputs and its ``features_hash``.

    Inputs are cast to double except those named in ``raw`` (text, images: kept as they are).
    """
    newest = Window.partitionBy("person_id").orderBy(
        F.col("index_time").desc(), F.col("index_id").desc()
    )
    return (
        features.withColumn("_rank", F.row_number().over(newest))
        .where(F.col("_rank") == 1)
        .select(
            "person_id",
            "index_id",
            "index_time",
            *(F.col(c) if c in raw else F.col(c).cast("double").alias(c) for c in columns),
            F.xxhash64("index_id", *columns).alias("features_hash"),
        )
    )


def score_rows(
    spark: SparkSession,
    cfg: Settings,
    champion: Champion,
    eligible: DataFrame,
    *,
    features_table: str,
    features_version: int,
    output: TableSpec = MODEL_PREDICTIONS,
    run_id: str | None = None,
    rows_per_task: int = ROWS_PER_TASK,
) -> ScoreReport:
    """Score the rows of ``eligible`` (:func:`eligible_rows`: ids, the champion's inputs,
    ``features_hash``) that ``output`` lacks for this version and hash; MERGE them.

    Shared by every model's scoring job.
    """
    name = champion.name
    eligible = eligible.cache()
    try:
        todo = eligible
        if spark.catalog.tableExists(output.name):
            done = (
                spark.table(output.name)
                .where((F.col("model_name") == name) & (F.col("model_version") == champion.version))
                .select("person_id", "features_hash")
            )
            todo = eligible.join(done, ["person_id", "features_hash"], "left_anti")
        n_eligible = eligible.count()
        n_todo = todo.count()
        inserted = updated = 0
        if n_todo:
            # One partition per rows_per_task rows: each task's Python worker imports MLflow
            # and loads the model once, which costs more than scoring a small batch.
            parts = max(1, min(spark.sparkContext.defaultParallelism, n_todo // rows_per_task))
            predictions = todo.repartition(parts, "person_id").mapInArrow(
                _predict_batches(champion.uri, require_server(cfg), champion.features),
                _SCORED_SCHEMA,
            )
            # Materialised once: the MERGE reads its source twice and must not score twice.
            scored = predictions.localCheckpoint(eager=True).select(
                F.lit(name).alias("model_name"),
                F.lit(champion.version).alias("model_version"),
                "person_id",
                "index_id",
                "index_time",
                "score",
                F.lit(champion.run_id).alias("model_run_id"),
                F.lit(features_table).alias("features_table"),
                F.lit(features_version).cast("long").alias("features_version"),
                "features_hash",
                F.lit(run_id).cast("string").alias("scoring_run_id"),
                F.current_timestamp().alias("scored_at"),
            )
            report = upsert(spark, output, scored)
            inserted, updated = report.inserted, report.updated
    finally:
        eligible.unpersist()
    result = ScoreReport(
        name, champion.version, features_table, features_version, n_eligible, n_todo, inserted,
        updated,
    )  # fmt: skip
    logger.info("%s", result.describe())
    return result


def score(
    spark: SparkSession,
    cfg: Settings,
    *,
    name: str | None = None,
    features_table: str = PATIENT_FEATURES.name,
    output: TableSpec = MODEL_PREDICTIONS,
    run_id: str | None = None,
) -> ScoreReport:
    """Score the champion of ``name`` on the patients whose features changed; MERGE them."""
    name = name or cfg.models.name
    champion = resolve_champion(cfg, name)
    version = latest_version(spark, features_table)
    feats = read_version(spark, features_table, version)
    require_inputs(champion, feats, features_table)
    eligible = eligible_rows(feats, champion.features)
    return score_rows(
        spark, cfg, champion, eligible, features_table=features_table,
        features_version=version, output=output, run_id=run_id,
    )  # fmt: skip


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    name: str | None = None,
    features_table: str = PATIENT_FEATURES.name,
    output: TableSpec = MODEL_PREDICTIONS,
) -> ScoreReport:
    """:func:`score` inside an ``ops.job_runs`` record (its run id tags the rows written)."""

    def scoring(run_id: str) -> ScoreReport:
        return score(
            spark, cfg, name=name, features_table=features_table, output=output, run_id=run_id
        )

    return recorded(spark, cfg, "score", scoring)


def recorded(
    spark: SparkSession, cfg: Settings, job: str, scoring: Callable[[str], ScoreReport]
) -> ScoreReport:
    """``scoring(run_id)`` inside an ``ops.job_runs`` record named ``job``, its counts kept."""
    with job_run(spark, cfg, job) as rec:
        report = scoring(rec.run_id)
        for key, value in report.counts().items():
            rec.count(key, value)
    return report
