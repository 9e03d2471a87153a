"""`lakehouse eval assistant` logs each evaluation to MLflow: metrics, left-out counts,
the report as an artifact, lineage tags (real tracking server, no Spark)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import mlflow

from lakehouse.tracking import TrackingServer, data_versions
from serving.assistant.evaluate import CaseResult, EvalCase, EvalReport, log_to_mlflow, write_report


def test_an_evaluation_is_one_mlflow_run(mlflow_server: TrackingServer, tmp_path: Path) -> None:
    case = EvalCase("Q1", "answerable", "value", "zh", "q", "H0001", "P1", 11.1, "%", None)
    report = EvalReport(
        [CaseResult(case, True, "11.1 %", ["silver.lab_result@3:H0001|lis|M1|4548-4"], 1, False)],
        {"lab in a truncated file": 2},
    )
    path = tmp_path / "assistant.json"
    write_report(report, path)
    cfg = mlflow_server.settings
    run_id = log_to_mlflow(cast(Any, None), cfg, report, path, tables=[])  # no table: no Spark
    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    run = client.get_run(run_id)
    assert run.data.metrics["answer_accuracy"] == 1.0
    assert run.data.metrics["citation_precision"] == 1.0
    assert run.data.metrics["left_out.lab_in_a_truncated_file"] == 2
    assert run.data.tags["mode"] == "grounded"
    assert "lakehouse.version" in run.data.tags
    assert data_versions(cfg, run_id) == {}
    local = client.download_artifacts(run_id, "assistant.json", str(tmp_path / "back"))
    assert json.loads(Path(local).read_text(encoding="utf-8"))["metrics"]["answerable"] == 1
