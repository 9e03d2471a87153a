"""Batch predictions of registered models, one row per patient and model version (docs/models.md).

Written by the scoring job (``jobs/score.py``): it scores the champion of a registered model
on each patient's newest feature row and MERGEs on (model, version, person). Only patients
whose feature row changed since their last prediction by that version are scored again; a
rerun over unchanged features writes nothing.
"""

from __future__ import annotations

from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, TimestampType

from lakehouse.tables.spec import Phi, TableSpec, column

MODEL_PREDICTIONS = TableSpec(
    name="gold.model_predictions",
    columns=(
        column("model_name", StringType(), "Registered MLflow model name.", nullable=False),
        column(
            "model_version",
            IntegerType(),
            "Registered model version that produced the score (the champion when scored).",
            nullable=False,
        ),
        column("person_id", LongType(), "The person (gold.person.person_id).", nullable=False),
        column(
            "index_id",
            LongType(),
            "Feature row scored (features.patient_features.index_id): the person's newest "
            "index time.",
            nullable=False,
        ),
        column(
            "index_time",
            TimestampType(),
            "Index (prediction) time of the scored feature row.",
            phi=Phi.DATE,
        ),
        column("score", DoubleType(), "Predicted probability of the positive label (0-1)."),
        column("model_run_id", StringType(), "MLflow run that trained the model version."),
        column(
            "features_table",
            StringType(),
            "Feature table the score was computed from.",
            nullable=False,
        ),
        column(
            "features_version",
            LongType(),
            "Delta version of features_table read (VERSION AS OF) when the row was scored.",
            nullable=False,
        ),
        column(
            "features_hash",
            LongType(),
            "xxhash64 of the scored feature values and index: a new hash means the features "
            "changed and the person is scored again.",
            nullable=False,
        ),
        column("scoring_run_id", StringType(), "ops.job_runs run that wrote the row."),
        column("scored_at", TimestampType(), "When the row was scored (UTC)."),
    ),
    comment="Batch predictions of registered models: one row per model version and person, "
    "with the feature table version it was computed from (incremental: rescored only when the "
    "person's features change).",
    keys=("model_name", "model_version", "person_id"),
    cluster_by=("person_id",),
    person_key="person_id",
    volatile=("scoring_run_id", "scored_at"),
)
