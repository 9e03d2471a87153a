"""``lakehouse lora-train``'s MLflow run on the shared real tracking server: parameters, the
loss of every step, the adapter as artifacts and the data versions of a lora-data folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
import torch

from lakehouse.tracking import data_versions
from models.llm import lora
from models.llm.tracking import EXPERIMENT, train_logged

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "llm" / "instructions.jsonl"


@pytest.mark.slow
def test_a_logged_run_has_params_losses_adapter_and_data_versions(
    mlflow_server: Any, tmp_path: Path
) -> None:
    cfg = mlflow_server.settings
    data = tmp_path / "instructions"
    data.mkdir()
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()[-4:]
    (data / "part-00000-x.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (data / lora.SOURCES_FILE).write_text(json.dumps({"silver.lab_result": 5}))
    base = lora.build_tiny(tmp_path / "base", lora.sample_texts(data), vocab_size=512)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_logged(
            cfg,
            lora.TrainConfig(
                base_model=base, data=data, out=tmp_path / "adapter", steps=2, batch_size=2,
                max_length=512, device="cpu",
            ),
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert result.run_id is not None
    client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params["steps"] == "2"
    assert run.data.params["data_sha256"] == lora.data_hash(data)
    history = client.get_metric_history(result.run_id, "loss")
    assert [m.step for m in history] == [1, 2]
    assert [round(m.value, 6) for m in history] == result.manifest["losses"]
    names = {a.path for a in client.list_artifacts(result.run_id, "adapter")}
    assert {"adapter/adapter_model.safetensors", "adapter/manifest.json"} <= names
    assert data_versions(cfg, result.run_id) == {"silver.lab_result": 5}


def test_without_a_server_the_adapter_is_written_and_not_logged(
    settings: Any, tmp_path: Path
) -> None:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()[-2:]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = lora.build_tiny(tmp_path / "base", lora.sample_texts(data), vocab_size=512)
    out = tmp_path / "adapter"
    result = train_logged(
        settings,
        lora.TrainConfig(base_model=base, data=data, out=out, batch_size=2, device="cpu"),
        mlflow=False,
    )
    assert result.run_id is None
    assert (out / "adapter_model.safetensors").is_file()
    assert "not logged to MLflow" in result.describe()
