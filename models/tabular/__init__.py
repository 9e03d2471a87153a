"""Tabular baseline of issue 9: type 2 diabetes recorded at or after the index time, from the
fixed patient features, tracked in MLflow and scored back into ``gold.model_predictions``.

``train`` / ``reproduce`` (``models.tabular.train``), ``score`` / ``run`` (the Spark scoring
job, ``models.tabular.score``), the task definition in ``models.tabular.task``.
docs/models.md.
"""

from models.metrics import evaluate
from models.tabular.score import ScoreReport, resolve_champion, score
from models.tabular.task import FEATURE_COLUMNS, LabelRule, TaskTables, cohort
from models.tabular.train import (
    CANDIDATES,
    Reproduction,
    TrainReport,
    reproduce,
    train,
)

__all__ = [
    "CANDIDATES",
    "FEATURE_COLUMNS",
    "LabelRule",
    "Reproduction",
    "ScoreReport",
    "TaskTables",
    "TrainReport",
    "cohort",
    "evaluate",
    "reproduce",
    "resolve_champion",
    "score",
    "train",
]
