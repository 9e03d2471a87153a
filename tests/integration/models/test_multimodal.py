"""The multimodal models for real: the cohort frame of ``models.multimodal.dataset`` over
Delta tables (features, conditions, persons, de-identified notes, image pixels), four models
trained and logged in the shared MLflow server, the champion registered, reproduced from its
logged data versions and scored into a predictions table incrementally.

Hand-made rows under table names of this module: 120 persons, each with a latent risk the
label draws from and that each modality carries part of (age, a note mentioning smoking,
a brighter disc on the image); some persons have no note or no image, and every ninth an
older index row that scoring must skip.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.features.meds import split_of
from lakehouse.settings import Settings
from lakehouse.tables.features.images import IMAGE_PIXELS
from lakehouse.tables.features.ml import HISTORY_COLUMNS, PATIENT_FEATURES
from lakehouse.tables.gold.omop import SPECS
from lakehouse.tables.gold.predictions import MODEL_PREDICTIONS
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.silver.person_index import PERSON_INDEX
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.versions import require_version
from lakehouse.tables.writer import upsert
from lakehouse.tracking import data_versions
from models.multimodal.dataset import MultimodalTables
from models.multimodal.nets import MODELS, NetConfig
from models.multimodal.score import score
from models.multimodal.train import reproduce, train

#: Spark cohort, four fits logged to MLflow, a reproduction and two scoring runs whose
#: Python workers import torch and MLflow: minutes on the shared 2-core machine.
pytestmark = pytest.mark.slow

PERSONS = 120
SITE = "H0001"
T0 = datetime(2026, 3, 1, 9, 0)


def _named(spec: TableSpec, suffix: str) -> TableSpec:
    layer, table = spec.name.split(".")
    return dataclasses.replace(spec, name=f"{layer}.mmt_{table}_{suffix}")


def _image(strength: float, rng: np.random.Generator) -> bytes:
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 30) ** 2 < 14**2).astype(np.float32)
    img = 0.1 * rng.random((64, 64)).astype(np.float32) + 0.8 * strength * disc
    return bytes(img.astype("<f4").tobytes())


@pytest.fixture(scope="module")
def tables(spark: SparkSession) -> MultimodalTables:
    rng = np.random.default_rng(11)
    suffix = str(rng.integers(1 << 40))
    specs = {
        "features": _named(PATIENT_FEATURES, suffix),
        "conditions": _named(SPECS["condition_occurrence"], suffix),
        "person": _named(SPECS["person"], suffix),
        "person_index": _named(PERSON_INDEX, suffix),
        "notes": _named(NOTE_DEID, suffix),
        "images": _named(IMAGE_PIXELS, suffix),
    }
    splits = {
        r["p"]: r["s"]
        for r in spark.range(1, PERSONS + 1)
        .select(F.col("id").alias("p"), split_of(F.col("id"), 0).alias("s"))
        .collect()
    }
    z = rng.normal(size=(PERSONS + 1, 3))
    label = rng.random(PERSONS + 1) < 1 / (1 + np.exp(-2.0 * z.sum(axis=1)))
    for s in ("tuning", "held_out"):  # both labels in every split, whatever the draw
        members = sorted(p for p, v in splits.items() if v == s)
        label[members[0]], label[members[1]] = True, False
    feats, conds, notes, images = [], [], [], []
    for p in range(1, PERSONS + 1):
        index = T0 + timedelta(days=int(rng.integers(0, 60)))
        row: dict[str, Any] = dict.fromkeys(HISTORY_COLUMNS, 0.0)
        row.update(
            index_id=p * 10, person_id=p, index_time=index, age_years=float(60 + 10 * z[p, 0]),
            sex_male=float(p % 2), build_id="b1",
        )  # fmt: skip
        feats.append(row)
        if p % 9 == 0:
            feats.append({**row, "index_id": p * 10 + 1, "index_time": index - timedelta(90)})
        if label[p]:
            conds.append(
                {
                    "condition_occurrence_id": p, "person_id": p,
                    "condition_start_date": index.date(),
                    "condition_start_datetime": index + timedelta(hours=1),
                    "condition_source_value": "ICD10:J44.900",
                }
            )  # fmt: skip
        key = {"institution_code": SITE, "patient_key": f"{SITE}|{p}"}
        if p % 7:
            smoker = "吸烟史 current smoker, 咳嗽" if z[p, 1] > 0 else "不吸烟 never smoked"
            notes.append(
                {
                    **key, "source_system": "notes", "note_id": f"n{p}",
                    "recorded_at": index - timedelta(days=2), "text_deid": f"[PHI] {smoker}。",
                }
            )  # fmt: skip
        if p % 5:
            images.append(
                {
                    **key, "source_system": "pacs", "study_instance_uid": f"1.2.{p}",
                    "study_at": index - timedelta(days=1),
                    "pixels": _image(float(1 / (1 + np.exp(-z[p, 2]))), rng),
                }
            )  # fmt: skip
    upsert(spark, specs["features"], spark.createDataFrame(feats))
    upsert(spark, specs["conditions"], spark.createDataFrame(conds))
    people = [{"person_id": p, "person_source_value": f"EMPI-{p}"} for p in range(1, PERSONS + 1)]
    upsert(spark, specs["person"], spark.createDataFrame(people))
    index_rows = [
        {"institution_code": SITE, "source_system": "his", "patient_key": f"{SITE}|{p}",
         "patient_id": str(p), "person_id": f"EMPI-{p}", "is_deleted": False}
        for p in range(1, PERSONS + 1)
    ]  # fmt: skip
    upsert(spark, specs["person_index"], spark.createDataFrame(index_rows))
    upsert(spark, specs["notes"], spark.createDataFrame(notes))
    upsert(spark, specs["images"], spark.createDataFrame(images))
    return MultimodalTables(
        features=specs["features"].name,
        conditions=specs["conditions"].name,
        concept=None,
        person=specs["person"].name,
        person_index=specs["person_index"].name,
        notes=specs["notes"].name,
        images=specs["images"].name,
    )


def test_train_register_reproduce_and_score(
    spark: SparkSession, mlflow_server: Any, tables: MultimodalTables
) -> None:
    import mlflow

    cfg: Settings = mlflow_server.settings
    name = f"mm-{np.random.default_rng().integers(1 << 40)}"
    config = NetConfig(epochs=4, threads=1, text_buckets=4096, hidden=16, image_channels=4)
    report = train(spark, cfg, tables=tables, name=name, config=config)

    # Four child runs of one parent, on the same split, each with lineage and metrics.
    assert [r.model for r in report.comparison] == list(MODELS)
    assert {r.n for r in report.comparison} == {report.rows["held_out"]}
    assert sum(report.rows.values()) == PERSONS + PERSONS // 9
    client = mlflow.MlflowClient()
    for result in report.results:
        assert data_versions(cfg, result.run_id) == report.data_versions
        run = client.get_run(result.run_id)
        assert run.data.tags["mlflow.parentRunId"] == report.parent_run_id
        assert run.data.params["net.epochs"] == "4"
        assert run.data.params["torch_threads"] == "1"
        for metric in ("held_out_auroc", "held_out_auprc", "held_out_ece", "tuning_auroc"):
            assert 0.0 <= run.data.metrics[metric] <= 1.0
    assert report.data_versions == {t: require_version(spark, t) for t in tables.required()}
    champion = client.get_model_version_by_alias(name, "champion")
    assert int(champion.version) == report.champion_version == 1
    assert champion.run_id == report.champion_run_id
    best = max(report.comparison, key=lambda r: r.tuning_auroc)
    assert best.run_id == report.champion_run_id
    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    assert info.signature is not None
    assert info.signature.inputs.input_names()[-2:] == ["note_text", "image"]

    again = reproduce(spark, cfg, report.champion_run_id)
    assert again.equal, again.describe()

    out = dataclasses.replace(MODEL_PREDICTIONS, name=f"gold.mmt_pred_{name.split('-')[1]}")
    first = score(spark, cfg, name=name, tables=tables, output=out, run_id="r1")
    assert (first.eligible, first.scored, first.inserted) == (PERSONS, PERSONS, PERSONS)
    rows = spark.table(out.name).collect()
    assert len({r["person_id"] for r in rows}) == len(rows) == PERSONS
    assert {r["model_version"] for r in rows} == {report.champion_version}
    assert {r["model_run_id"] for r in rows} == {report.champion_run_id}
    assert all(r["index_id"] % 10 == 0 and 0.0 <= r["score"] <= 1.0 for r in rows)
    written = require_version(spark, out.name)
    rerun = score(spark, cfg, name=name, tables=tables, output=out)
    assert (rerun.scored, rerun.inserted, rerun.updated) == (0, 0, 0)
    assert require_version(spark, out.name) == written  # nothing committed
