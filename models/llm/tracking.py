"""``lakehouse lora-train``: the trainer with an MLflow run around it, when a server answers.

The run holds the training parameters, the loss of every step (metric ``loss``), the
manifest's figures, the adapter folder as artifacts (``adapter/``) and the Delta versions of
the silver tables behind the instruction data (``_sources.json`` of a ``lakehouse
lora-data`` folder, logged with :func:`lakehouse.tracking.log_data_versions`). Without a
server the adapter and manifest are written all the same and the run is not logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.settings import Settings
from lakehouse.tracking import log_data_versions, ping, start_run, tracking_uri
from models.llm.lora import SOURCES_FILE, TrainConfig, train

logger = logging.getLogger(__name__)

EXPERIMENT = "llm-lora"
_METRICS = ("steps_per_s", "tokens_per_s", "train_seconds", "peak_gpu_memory_mb")


@dataclass(frozen=True)
class TrainResult:
    """The manifest, and the MLflow run id when the run was logged."""

    manifest: dict[str, Any]
    run_id: str | None

    def describe(self) -> str:
        m = self.manifest
        text = (
            f"adapter in {m['config']['out']}: {m['steps']} steps on {m['device']} "
            f"({m['dtype']}), loss {m['losses'][0]:.4f} -> {m['losses'][-1]:.4f}, "
            f"{m['steps_per_s']} steps/s; rejected lines {sum(m['data_rejected'].values())}"
        )
        return text + (f"; mlflow run {self.run_id}" if self.run_id else "; not logged to MLflow")


def data_versions(data: Path) -> dict[str, int]:
    """The ``{table: version}`` a ``lakehouse lora-data`` folder was built from ({} else)."""
    sidecar = data / SOURCES_FILE
    if not data.is_dir() or not sidecar.is_file():
        return {}
    return {str(k): int(v) for k, v in json.loads(sidecar.read_text()).items()}


def train_logged(
    cfg: Settings, train_cfg: TrainConfig, *, mlflow: bool | None = None
) -> TrainResult:
    """Train; log to MLflow when ``mlflow`` is True, or None and the server answers."""
    use = ping(tracking_uri(cfg)) if mlflow is None else mlflow
    if not use:
        logger.info("lora-train: MLflow off or not answering; the run is not logged")
        return TrainResult(train(train_cfg), None)
    import mlflow as mlf

    params = {
        k: (",".join(v) if isinstance(v, tuple) else str(v)) for k, v in vars(train_cfg).items()
    }
    with start_run(cfg, EXPERIMENT, run_name=train_cfg.out.name) as run:
        mlf.log_params(params)

        def on_step(step: int, loss: float) -> None:
            mlf.log_metric("loss", loss, step=step)

        manifest = train(train_cfg, on_step=on_step)
        mlf.log_params(
            {
                "base_config_sha256": manifest["base_config_sha256"],
                "data_sha256": manifest["data_sha256"],
                "model_type": manifest["model_type"],
                "dtype": manifest["dtype"],
                "device": manifest["device"],
            }
        )
        mlf.log_metrics({k: float(manifest[k]) for k in _METRICS if manifest[k] is not None})
        mlf.log_metrics(
            {
                "data_lines": float(manifest["data_lines"]),
                "data_rejected": float(sum(manifest["data_rejected"].values())),
                "trainable_params": float(manifest["trainable_params"]),
            }
        )
        versions = data_versions(train_cfg.data)
        if versions:
            log_data_versions(run, versions)
        mlf.log_artifacts(str(train_cfg.out), artifact_path="adapter")
        return TrainResult(manifest, run.info.run_id)
