"""Train the tabular baseline, track it in MLflow, register the best as ``champion``.

``train`` pins the Delta versions of its inputs, builds the cohort (``models.tabular.task``),
collects it to the driver (bounded by ``models.max_training_rows``: LH-MDL-001 beyond it; see
docs/adr/0019), fits each candidate on the train split, selects on the tuning split's AUROC and
reports held-out metrics. Each candidate is one MLflow run carrying the data versions
(``log_data_versions``), the parameters ``reproduce`` needs, the metrics and the fitted
scikit-learn pipeline (signature, input example, explicit pip requirements). The best run's
model is registered and gets the alias ``champion``.

``reproduce(spark, cfg, run_id)`` re-reads the logged versions, refits the logged candidate
with the logged parameters and returns both metric sets: equal when the run is reproducible.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings
from lakehouse.tracking import data_versions, log_data_versions, register_champion, start_run
from lakehouse.tracking.client import require_server
from models.metrics import METRICS, evaluate
from models.tabular.task import (
    FEATURE_COLUMNS,
    LABEL,
    SPLIT,
    SPLITS,
    TASK,
    LabelRule,
    TaskTables,
    cohort,
    pin_versions,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

ARTIFACT_PATH = "model"
#: Types beyond skops' defaults the fitted pipelines hold (MLflow saves scikit-learn models
#: with skops, not pickle; loading refuses any type not listed here).
TRUSTED_TYPES = ["numpy.dtype", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def _logreg(seed: int) -> Pipeline:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=1.0, max_iter=2000, random_state=seed)),
        ]
    )


def _hgb(seed: int) -> Pipeline:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    # Missing values are native to HGB; early stopping off: it would draw a random
    # validation subset, and the tuning split already selects.
    model = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    return Pipeline([("model", model)])


#: Candidate name -> builder of an unfitted pipeline (seeded). Ties go to the earlier one.
CANDIDATES: dict[str, Callable[[int], Pipeline]] = {"logreg": _logreg, "hgb": _hgb}


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's MLflow run and metrics (``<split>_<metric>``)."""

    name: str
    run_id: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainReport:
    """What one ``train`` call did."""

    train_id: str
    model_name: str
    data_versions: dict[str, int]
    rows: dict[str, int]
    candidates: list[CandidateResult]
    champion: str
    champion_run_id: str
    champion_version: int

    def describe(self) -> str:
        """A short human-readable summary (no patient data)."""
        lines = [
            f"trained {self.model_name} on "
            + ", ".join(f"{t}@v{v}" for t, v in sorted(self.data_versions.items())),
            "rows: " + ", ".join(f"{k} {v}" for k, v in self.rows.items()),
        ]
        for c in self.candidates:
            shown = ", ".join(
                f"{m} {c.metrics.get(f'held_out_{m}', float('nan')):.3f}" for m in METRICS
            )
            lines.append(
                f"  {c.name:<7} run {c.run_id}: tuning auroc "
                f"{c.metrics.get('tuning_auroc', float('nan')):.3f}; held-out {shown}"
            )
        lines.append(
            f"champion: {self.champion} (run {self.champion_run_id}) registered as "
            f"{self.model_name} version {self.champion_version}"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class Reproduction:
    """The metrics a run logged and the ones a refit on its logged data versions gives."""

    run_id: str
    data_versions: dict[str, int]
    logged: dict[str, float]
    reproduced: dict[str, float] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        """True when every logged metric is reproduced (to 1e-9)."""
        return bool(self.logged) and all(
            k in self.reproduced and math.isclose(v, self.reproduced[k], abs_tol=1e-9)
            for k, v in self.logged.items()
        )

    def describe(self) -> str:
        """Logged vs reproduced, one metric a line."""
        lines = [f"run {self.run_id} on " + ", ".join(
            f"{t}@v{v}" for t, v in sorted(self.data_versions.items())
        )]  # fmt: skip
        for k in sorted(self.logged):
            lines.append(f"  {k:<16} logged {self.logged[k]:.6f} reproduced "
                         f"{self.reproduced.get(k, float('nan')):.6f}")  # fmt: skip
        lines.append("reproduced" if self.equal else "NOT reproduced")
        return "\n".join(lines)


def collect(
    spark: SparkSession,
    cfg: Settings,
    tables: TaskTables,
    versions: Mapping[str, int],
    rule: LabelRule,
    split_seed: int,
) -> pd.DataFrame:
    """The cohort on the driver, sorted by index id (deterministic row order).

    Bounded: more than ``models.max_training_rows`` rows raise LH-MDL-001 before anything
    is collected. Each split must hold both labels (LH-MDL-002).
    """
    rows = cohort(spark, tables, versions, rule, split_seed)
    count = rows.count()
    limit = cfg.models.max_training_rows
    if count > limit:
        raise error(
            ErrorCode.MODEL_TRAINING_TOO_LARGE, table=tables.features, count=count, expected=limit
        )
    frame: pd.DataFrame = rows.toArrow().to_pandas()
    frame = frame.sort_values("index_id", kind="stable").reset_index(drop=True)
    for split in SPLITS:
        labels = frame.loc[frame[SPLIT] == split, LABEL]
        if labels.nunique() < 2:
            raise error(
                ErrorCode.MODEL_TRAINING_DATA_INVALID,
                stage=split,
                table=tables.features,
                reason=f"{len(labels)} rows with {int(labels.sum())} positive; both labels needed",
            )
    return frame


def fit_and_score(
    frame: pd.DataFrame, candidate: str, seed: int
) -> tuple[Pipeline, dict[str, float]]:
    """Fit ``candidate`` on the train split; metrics on every split (``<split>_<metric>``)."""
    pipeline = CANDIDATES[candidate](seed)
    train = frame[frame[SPLIT] == "train"]
    pipeline.fit(train[list(FEATURE_COLUMNS)], train[LABEL].to_numpy())
    metrics: dict[str, float] = {}
    for split in SPLITS:
        part = frame[frame[SPLIT] == split]
        proba = pipeline.predict_proba(part[list(FEATURE_COLUMNS)])[:, 1]
        y = part[LABEL].to_numpy()
        for name, value in evaluate(y, proba).items():
            metrics[f"{split}_{name}"] = value
        metrics[f"{split}_rows"] = float(len(part))
        metrics[f"{split}_prevalence"] = float(y.mean())
    return pipeline, metrics


def pip_requirements() -> list[str]:
    """What loading the model needs, pinned to this environment (no inference: fast)."""
    import sklearn

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def input_example(frame: pd.DataFrame) -> pd.DataFrame:
    """One row of per-feature medians of the train split: no single patient's values."""
    medians = frame.loc[frame[SPLIT] == "train", list(FEATURE_COLUMNS)].median()
    return pd.DataFrame([medians.fillna(0.0).round(0).to_dict()]).astype("float64")


def _params(
    candidate: str,
    pipeline: Pipeline,
    tables: TaskTables,
    rule: LabelRule,
    split_seed: int,
    seed: int,
) -> dict[str, Any]:
    est = pipeline.steps[-1][1]
    hyper = {
        f"model.{k}": v
        for k, v in est.get_params(deep=False).items()
        if isinstance(v, (int, float, str, bool)) or v is None
    }
    return {
        "task": TASK,
        "candidate": candidate,
        **tables.params(),
        "split_seed": split_seed,
        "seed": seed,
        "n_features": len(FEATURE_COLUMNS),
        **rule.params(),
        **hyper,
    }


def train(
    spark: SparkSession,
    cfg: Settings,
    *,
    tables: TaskTables | None = None,
    versions: Mapping[str, int] | None = None,
    name: str | None = None,
    candidates: tuple[str, ...] = tuple(CANDIDATES),
) -> TrainReport:
    """Train every candidate, log each as an MLflow run, register the best as champion.

    ``versions`` pins input tables (``{table: version}``); others are read at their newest.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    tables = tables or TaskTables()
    name = name or cfg.models.name
    rule = LabelRule.from_settings(cfg)
    split_seed, seed = cfg.features.split_seed, cfg.models.seed
    require_server(cfg)  # before any Spark work: LH-MLF-004 at once
    pinned = {**pin_versions(spark, tables), **{k: int(v) for k, v in (versions or {}).items()}}
    frame = collect(spark, cfg, tables, pinned, rule, split_seed)
    rows = {s: int((frame[SPLIT] == s).sum()) for s in SPLITS}
    example = input_example(frame)
    train_id = uuid.uuid4().hex[:12]
    results: list[CandidateResult] = []
    for candidate in candidates:
        pipeline, metrics = fit_and_score(frame, candidate, seed)
        tags = {"lakehouse.task": TASK, "lakehouse.train_id": train_id}
        with start_run(cfg, name, run_name=candidate, tags=tags) as run:
            log_data_versions(run, pinned)
            mlflow.log_params(_params(candidate, pipeline, tables, rule, split_seed, seed))
            mlflow.log_metrics(metrics)
            signature = infer_signature(example, pipeline.predict_proba(example))
            mlflow.sklearn.log_model(
                sk_model=pipeline,
                name=ARTIFACT_PATH,
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=TRUSTED_TYPES,
            )
            results.append(CandidateResult(candidate, run.info.run_id, metrics))
        logger.info("candidate %s: tuning auroc %.4f", candidate, metrics["tuning_auroc"])
    best = max(results, key=lambda r: (r.metrics["tuning_auroc"], -results.index(r)))
    version = register_champion(cfg, name, best.run_id, ARTIFACT_PATH)
    return TrainReport(train_id, name, pinned, rows, results, best.name, best.run_id, version)


def parse_versions(items: list[str] | tuple[str, ...]) -> dict[str, int]:
    """``TABLE=VERSION`` pairs of ``lakehouse train --data-version`` (LH-CFG-001 if malformed)."""
    out: dict[str, int] = {}
    for item in items:
        table, _, version = item.partition("=")
        if not table or not version.isdigit():
            raise error(
                ErrorCode.CONFIG_INVALID,
                setting="--data-version",
                reason="give TABLE=VERSION, e.g. features.patient_features=7",
            )
        out[table] = int(version)
    return out


def reproduce(spark: SparkSession, cfg: Settings, run_id: str) -> Reproduction:
    """Refit run ``run_id`` on its logged data versions and parameters; both metric sets.

    LH-MDL-004 when the run lacks what a refit needs (data versions, candidate, tables).
    """
    import mlflow

    uri = require_server(cfg)
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)
    params = run.data.params
    versions = data_versions(cfg, run_id)
    candidate = params.get("candidate", "")
    needed = ("features_table", "conditions_table", "split_seed", "seed", "label_codes")
    missing = [p for p in needed if p not in params]
    if candidate not in CANDIDATES or missing or not versions:
        reason = "no data versions" if not versions else f"missing params {missing or candidate}"
        raise error(ErrorCode.MODEL_RUN_NOT_REPRODUCIBLE, name=run_id, reason=reason)
    tables = TaskTables.from_params(params)
    required = {tables.features, tables.conditions}
    if not required <= set(versions) <= required | {tables.concept or ""}:
        raise error(
            ErrorCode.MODEL_RUN_NOT_REPRODUCIBLE, name=run_id, reason="data versions do not match"
        )
    rule = LabelRule.from_params(params)
    frame = collect(spark, cfg, tables, versions, rule, int(params["split_seed"]))
    _, metrics = fit_and_score(frame, candidate, int(params["seed"]))
    logged = {k: float(v) for k, v in run.data.metrics.items() if k.endswith(METRICS)}
    reproduced = {k: metrics[k] for k in logged if k in metrics}
    return Reproduction(run_id, versions, logged, reproduced)
