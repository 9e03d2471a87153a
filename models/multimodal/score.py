"""Batch scoring of the multimodal champion into ``gold.model_predictions`` (docs/models.md).

The tabular scoring job's machinery (``models.tabular.score``: the champion resolved once to
an immutable version, each person's newest index row, ``features_hash`` for incremental
reruns, ``mapInArrow`` with one pyfunc load per worker, MERGE on model, version and person)
over the multimodal cohort frame (``models.multimodal.dataset.cohort_frame``): the hash
covers the index id, the tabular inputs, the note text and the image bytes, so a person is
scored again when any of the three changes. ``features_table``/``features_version`` of a row
name the cohort's feature table and the version read; every input table is read at its
newest version when the job starts.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakehouse.settings import Settings
from lakehouse.tables.gold.predictions import MODEL_PREDICTIONS
from lakehouse.tables.spec import TableSpec
from models.multimodal.dataset import MultimodalTables, cohort_frame
from models.multimodal.pyfunc import IMAGE_COLUMN, TEXT_COLUMN
from models.tabular.score import (
    ScoreReport,
    eligible_rows,
    recorded,
    require_inputs,
    resolve_champion,
    score_rows,
)

#: Rows per scoring task: an image is 16 KB, so fewer than the tabular job's 50,000.
ROWS_PER_TASK = 5_000


def score(
    spark: SparkSession,
    cfg: Settings,
    *,
    name: str | None = None,
    tables: MultimodalTables | None = None,
    output: TableSpec = MODEL_PREDICTIONS,
    run_id: str | None = None,
) -> ScoreReport:
    """Score the champion of ``name`` (``models.multimodal_name``) on every person whose
    newest index row changed since that version last scored them; MERGE the scores."""
    name = name or cfg.models.multimodal_name
    tables = tables or MultimodalTables()
    champion = resolve_champion(cfg, name)
    frame, versions = cohort_frame(spark, cfg, tables=tables)
    require_inputs(champion, frame, tables.features)
    eligible = eligible_rows(frame, champion.features, raw=(TEXT_COLUMN, IMAGE_COLUMN))
    return score_rows(
        spark, cfg, champion, eligible, features_table=tables.features,
        features_version=versions[tables.features], output=output, run_id=run_id,
        rows_per_task=ROWS_PER_TASK,
    )  # fmt: skip


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    name: str | None = None,
    tables: MultimodalTables | None = None,
    output: TableSpec = MODEL_PREDICTIONS,
) -> ScoreReport:
    """:func:`score` inside an ``ops.job_runs`` record named ``score_multimodal``."""
    return recorded(
        spark, cfg, "score_multimodal",
        lambda run_id: score(spark, cfg, name=name, tables=tables, output=output, run_id=run_id),
    )  # fmt: skip
