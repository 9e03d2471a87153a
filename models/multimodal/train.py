"""Train the text, image, tabular and joint models of the multimodal task in MLflow; register
the best on the tuning split as ``champion`` (docs/models.md, ADR 0025).

``train`` loads the cohort (``models.multimodal.dataset.load``: pinned Delta versions, a
bounded collect), then fits each model of :data:`~models.multimodal.nets.MODELS` with
:func:`~models.multimodal.nets.fit` on the same split. One parent run per ``train`` call
(``run_name`` ``multimodal``) and one child run per model (tag ``mlflow.parentRunId``), each
with the data versions, every hyper-parameter (``net.*``), the seed and torch thread count,
metrics per split (``models.metrics``) and the model as a pyfunc
(``models.multimodal.pyfunc``). The comparison table is read back from MLflow
(:func:`comparison`). ``reproduce(spark, cfg, run_id)`` reloads the logged versions, refits
with the logged parameters and compares the metrics.
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings
from lakehouse.tracking import data_versions, log_data_versions, register_champion, start_run
from lakehouse.tracking.client import require_server
from models.metrics import METRICS, paired_auroc_gain
from models.multimodal.nets import MODELS, SPLITS, FitResult, ModalData, NetConfig, fit
from models.multimodal.pyfunc import input_example, log_model
from models.tabular.train import CandidateResult, Reproduction

#: One model's MLflow run and metrics: the same record as a tabular candidate's.
ModelResult = CandidateResult

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from models.multimodal.dataset import MultimodalTables

logger = logging.getLogger(__name__)

ARTIFACT_PATH = "model"
PARENT_RUN_NAME = "multimodal"
PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class ComparisonRow:
    """One line of the comparison table, as MLflow holds it."""

    model: str
    run_id: str
    tuning_auroc: float
    auroc: float
    auprc: float
    ece: float
    brier: float
    n: int
    positives: int


@dataclass(frozen=True)
class Gain:
    """The joint model's held-out AUROC minus one single-modality model's, on the same
    persons, with its paired-bootstrap 95% interval (``models.metrics.paired_auroc_gain``)."""

    versus: str
    gain: float
    lo: float
    hi: float


JOINT = "joint"
GAIN_METRIC = "held_out_auroc_gain_vs_"


@dataclass(frozen=True)
class MultimodalReport:
    """What one ``train`` call did."""

    train_id: str
    model_name: str
    parent_run_id: str
    data_versions: dict[str, int]
    rows: dict[str, int]
    results: list[ModelResult]
    champion: str
    champion_run_id: str
    champion_version: int
    comparison: list[ComparisonRow]
    gains: list[Gain]

    def describe(self) -> str:
        """Versions, rows, the comparison table and the champion (no patient data)."""
        lines = [
            f"trained {self.model_name} (parent run {self.parent_run_id}) on "
            + ", ".join(f"{t}@v{v}" for t, v in sorted(self.data_versions.items())),
            "rows: " + ", ".join(f"{k} {v}" for k, v in self.rows.items()),
            format_comparison(self.comparison, self.gains),
            f"champion: {self.champion} (run {self.champion_run_id}) registered as "
            f"{self.model_name} version {self.champion_version}",
        ]
        return "\n".join(lines)


def config_from_settings(cfg: Settings) -> NetConfig:
    """The default :class:`NetConfig` with the seed, threads and epochs of ``cfg.models``."""
    m = cfg.models
    return NetConfig(seed=m.seed, threads=m.torch_threads, epochs=m.multimodal_epochs)


def check_splits(data: ModalData, table: str) -> dict[str, int]:
    """Rows per split; LH-MDL-002 when a split lacks a label."""
    split = np.asarray(data.split).astype(str)
    rows: dict[str, int] = {}
    for s in SPLITS:
        labels = np.asarray(data.label)[split == s]
        rows[s] = len(labels)
        if len(np.unique(labels)) < 2:
            raise error(
                ErrorCode.MODEL_TRAINING_DATA_INVALID,
                stage=s,
                table=table,
                reason=f"{len(labels)} rows with {int(labels.sum())} positive; both labels needed",
            )
    return rows


def run_params(
    model: str, config: NetConfig, table_params: Mapping[str, str], split_seed: int, device: str
) -> dict[str, Any]:
    """Everything a refit needs, as MLflow params."""
    import torch

    from models.multimodal.dataset import MULTIMODAL_TASK

    return {
        "task": MULTIMODAL_TASK,
        "model": model,
        "modalities": ",".join(MODELS[model]),
        **table_params,
        "split_seed": split_seed,
        "seed": config.seed,
        "torch_threads": config.threads,
        "device": device,
        "torch_version": torch.__version__,
        **config.params(),
    }


def train_set(
    cfg: Settings,
    data: ModalData,
    *,
    name: str,
    table_params: Mapping[str, str],
    versions: Mapping[str, int],
    models: Sequence[str] = tuple(MODELS),
    config: NetConfig | None = None,
    device: str = "cpu",
) -> MultimodalReport:
    """Fit ``models`` on ``data``, log each as a child run, register the best as champion."""
    import mlflow

    config = config or config_from_settings(cfg)
    rows = check_splits(data, name)
    train_id = uuid.uuid4().hex[:12]
    tags = {"lakehouse.task": "multimodal", "lakehouse.train_id": train_id}
    with start_run(cfg, name, run_name=PARENT_RUN_NAME, tags=tags) as parent:
        log_data_versions(parent, versions)
        mlflow.log_params({"models": ",".join(models), **table_params, "seed": config.seed})
    parent_id = parent.info.run_id
    split = np.asarray(data.split).astype(str)
    train_rows = split == "train"
    results: list[ModelResult] = []
    held_out: dict[str, np.ndarray] = {}
    for model in models:
        result: FitResult = fit(data, config, modalities=MODELS[model], device=device)
        split_seed = cfg.features.split_seed
        with start_run(cfg, name, run_name=model, tags={**tags, PARENT_TAG: parent_id}) as run:
            log_data_versions(run, versions)
            mlflow.log_params(run_params(model, config, table_params, split_seed, device))
            mlflow.log_metrics({**result.metrics, "fit_seconds": result.seconds})
            example = input_example(result.model, np.asarray(data.tabular)[train_rows])
            with tempfile.TemporaryDirectory() as tmp:
                log_model(result.model, Path(tmp) / "net", example, ARTIFACT_PATH)
            results.append(ModelResult(model, run.info.run_id, result.metrics))
        if result.held_out is not None:
            held_out[model] = result.held_out
        logger.info(
            "model %s: tuning auroc %.4f in %.1fs",
            model, result.metrics.get("tuning_auroc", math.nan), result.seconds,
        )  # fmt: skip
    best = max(results, key=lambda r: (_num(r.metrics.get("tuning_auroc")), -results.index(r)))
    version = register_champion(cfg, name, best.run_id, ARTIFACT_PATH)
    client = mlflow.MlflowClient(tracking_uri=require_server(cfg))
    client.set_tag(parent_id, "lakehouse.champion", best.name)
    client.set_tag(parent_id, "lakehouse.champion_version", str(version))
    y_held = np.asarray(data.label)[split == "held_out"]
    for gain in joint_gains(y_held, held_out, seed=config.seed):
        key = f"{GAIN_METRIC}{gain.versus}"
        for suffix, value in (("", gain.gain), ("_lo", gain.lo), ("_hi", gain.hi)):
            client.log_metric(parent_id, key + suffix, value)
    return MultimodalReport(
        train_id, name, parent_id, dict(versions), rows, results, best.name, best.run_id,
        version, comparison(cfg, parent_id), gains(cfg, parent_id),
    )  # fmt: skip


def joint_gains(y: np.ndarray, held_out: Mapping[str, np.ndarray], seed: int) -> list[Gain]:
    """The joint model against each single-modality model on the held-out persons (none
    without a joint model)."""
    if JOINT not in held_out:
        return []
    out = []
    for model, scores in held_out.items():
        if model != JOINT:
            gain, lo, hi = paired_auroc_gain(y, held_out[JOINT], scores, seed=seed)
            out.append(Gain(model, gain, lo, hi))
    return out


def gains(cfg: Settings, parent_run_id: str) -> list[Gain]:
    """The joint model's gains read back from the parent run's metrics."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=require_server(cfg))
    m = client.get_run(parent_run_id).data.metrics
    return [
        Gain(key.removeprefix(GAIN_METRIC), v, m[f"{key}_lo"], m[f"{key}_hi"])
        for key, v in sorted(m.items())
        if key.startswith(GAIN_METRIC) and not key.endswith(("_lo", "_hi"))
    ]


def _num(value: float | None) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def train(
    spark: SparkSession,
    cfg: Settings,
    *,
    tables: MultimodalTables | None = None,
    versions: Mapping[str, int] | None = None,
    name: str | None = None,
    models: Sequence[str] = tuple(MODELS),
    config: NetConfig | None = None,
    device: str | None = None,
) -> MultimodalReport:
    """Load the cohort at pinned versions and train ``models`` (see :func:`train_set`).

    ``device``: ``cpu`` unless given (``cuda`` on a GPU server; reproducing such a run needs
    the same device).
    """
    from models.multimodal.dataset import MultimodalTables, load

    tables = tables or MultimodalTables()
    name = name or cfg.models.multimodal_name
    require_server(cfg)  # before any Spark work: LH-MLF-004 at once
    data = load(spark, cfg, tables=tables, versions=versions)
    return train_set(
        cfg, data, name=name, table_params=tables.params(), versions=data.versions,
        models=models, config=config, device=device or "cpu",
    )  # fmt: skip


def comparison(cfg: Settings, parent_run_id: str) -> list[ComparisonRow]:
    """The child runs of ``parent_run_id`` read back from MLflow, in start order."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=require_server(cfg))
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.{PARENT_TAG} = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    out = []
    for run in runs:
        m = run.data.metrics
        n = int(m.get("held_out_rows", 0))
        out.append(
            ComparisonRow(
                model=run.data.params.get("model", run.info.run_name or ""),
                run_id=run.info.run_id,
                tuning_auroc=m.get("tuning_auroc", math.nan),
                auroc=m.get("held_out_auroc", math.nan),
                auprc=m.get("held_out_auprc", math.nan),
                ece=m.get("held_out_ece", math.nan),
                brier=m.get("held_out_brier", math.nan),
                n=n,
                positives=round(n * m.get("held_out_prevalence", 0.0)),
            )
        )
    return out


def format_comparison(rows: Sequence[ComparisonRow], joint: Sequence[Gain] = ()) -> str:
    """The comparison table (held-out split; tuning AUROC selects the champion), then the
    joint model's AUROC gain over each single modality and what the intervals allow."""
    names = ("tuning AUROC", "AUROC", "AUPRC", "ECE", "Brier")
    head = f"{'model':<9} " + " ".join(f"{h:>{max(7, len(h))}}" for h in names) + "      n   pos"
    lines = ["held-out comparison (from MLflow):", head]
    for r in rows:
        lines.append(
            f"{r.model:<9} {r.tuning_auroc:>12.3f} {r.auroc:>7.3f} {r.auprc:>7.3f} "
            f"{r.ece:>7.3f} {r.brier:>7.3f} {r.n:>6d} {r.positives:>5d}"
        )
    if joint:
        lines.append("joint minus each single modality, held-out AUROC (paired bootstrap 95% CI):")
        for g in joint:
            lines.append(f"  vs {g.versus:<8} {g.gain:+.3f}  [{g.lo:+.3f}, {g.hi:+.3f}]")
        lines.append(_verdict(rows, joint))
    return "\n".join(lines)


def _verdict(rows: Sequence[ComparisonRow], joint: Sequence[Gain]) -> str:
    held = next((r for r in rows if r.model == JOINT), None)
    size = f"{held.n} held-out persons, {held.positives} positive" if held else "the held-out split"
    if all(g.lo > 0 for g in joint):
        return f"joint beats every single modality: each interval is above 0 ({size})"
    if all(g.gain > 0 for g in joint):
        return (
            f"joint scores above every single modality, but an interval includes 0: {size} "
            "are too few to rank them"
        )
    return f"joint does not beat every single modality on {size}"


def reproduce(spark: SparkSession, cfg: Settings, run_id: str) -> Reproduction:
    """Refit child run ``run_id`` on its logged data versions and parameters; both metric
    sets (LH-MDL-004 when the run lacks what a refit needs)."""
    import mlflow

    from models.multimodal.dataset import MultimodalTables, load

    uri = require_server(cfg)
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)
    params = run.data.params
    versions = data_versions(cfg, run_id)
    model = params.get("model", "")
    needed = ("features_table", "notes_table", "images_table", "split_seed", "net.seed")
    missing = [p for p in needed if p not in params]
    if model not in MODELS or missing or not versions:
        reason = "no data versions" if not versions else f"missing params {missing or model}"
        raise error(ErrorCode.MODEL_RUN_NOT_REPRODUCIBLE, name=run_id, reason=reason)
    tables = MultimodalTables.from_params(params)
    split_seed = int(params["split_seed"])
    cfg_run = cfg.model_copy(
        update={"features": cfg.features.model_copy(update={"split_seed": split_seed})}
    )
    data = load(spark, cfg_run, tables=tables, versions=versions)
    if data.versions != versions:
        raise error(
            ErrorCode.MODEL_RUN_NOT_REPRODUCIBLE, name=run_id, reason="data versions do not match"
        )
    config = NetConfig.from_params(params)
    result = fit(data, config, modalities=MODELS[model], device=params.get("device", "cpu"))
    logged = {k: float(v) for k, v in run.data.metrics.items() if k.endswith(METRICS)}
    reproduced = {k: result.metrics[k] for k in logged if k in result.metrics}
    return Reproduction(run_id, versions, logged, reproduced)


def multimodal_trainer(
    models: Sequence[str] | None, device: str | None
) -> tuple[Callable[..., MultimodalReport], Callable[[SparkSession, Settings, str], Reproduction]]:
    """(train, reproduce) for the command line's ``--task multimodal`` with its ``--model``
    and ``--device`` bound; LH-CFG-001 for a model name not in :data:`MODELS`."""
    unknown = sorted(set(models or ()) - set(MODELS))
    if unknown:
        raise error(
            ErrorCode.CONFIG_INVALID, setting="--model", reason=f"one of {', '.join(MODELS)}"
        )
    chosen = tuple(m for m in MODELS if not models or m in models)
    return functools.partial(train, models=chosen, device=device), reproduce


__all__ = [
    "ComparisonRow",
    "Gain",
    "ModelResult",
    "MultimodalReport",
    "comparison",
    "format_comparison",
    "gains",
    "joint_gains",
    "multimodal_trainer",
    "reproduce",
    "train",
    "train_set",
]
