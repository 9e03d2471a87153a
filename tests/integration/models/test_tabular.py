"""The tabular baseline for real: Spark and Delta tables at pinned versions, the project's
MLflow server (shared ``mlflow_server``), the registry's champion and the scoring job.

Small hand-made feature rows with signal (age and drug counts raise the chance of a type 2
diabetes record at or after the index time), under table names of their own.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings
from lakehouse.tables.features.ml import HISTORY_COLUMNS, PATIENT_FEATURES
from lakehouse.tables.gold.omop import SPECS
from lakehouse.tables.gold.predictions import MODEL_PREDICTIONS
from lakehouse.tables.versions import require_version
from lakehouse.tables.writer import upsert
from lakehouse.tracking import data_versions

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from models.tabular import (  # noqa: E402 (after the skips)
    FEATURE_COLUMNS,
    LabelRule,
    TaskTables,
    cohort,
    reproduce,
    score,
    train,
)
from models.tabular.task import pin_versions  # noqa: E402

#: Training two candidates, registering, scoring twice through MLflow on Spark: 5-7 min on
#: the shared 2-core machine, so the whole module runs in `make test-all`.
pytestmark = pytest.mark.slow

PERSONS = 360
T0 = datetime(2026, 3, 1, 9, 0)
E11, I10 = 634447052094869470, 393887812730821921


def _feature_rows(rng: np.random.Generator) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    feats: list[dict[str, Any]] = []
    conds: list[dict[str, Any]] = []
    for person in range(1, PERSONS + 1):
        age = float(rng.integers(20, 90))
        drugs = float(rng.poisson(1 + 3 * (age > 55)))
        index = T0 + timedelta(days=int(rng.integers(0, 60)))
        row: dict[str, Any] = dict.fromkeys(HISTORY_COLUMNS, 0.0)
        row.update(
            index_id=person * 10,
            person_id=person,
            index_time=index,
            age_years=age,
            sex_male=float(person % 2),
            drugs_distinct_365d=drugs,
            visits_total_365d=float(rng.poisson(2)),
            build_id="b1",
        )
        feats.append(row)
        if person % 7 == 0:  # an older index row: training uses it, scoring does not
            feats.append({**row, "index_id": person * 10 + 1, "index_time": index - timedelta(90)})
        logit = -3.0 + 0.06 * (age - 50) + 0.5 * drugs
        positive = rng.random() < 1 / (1 + np.exp(-logit))
        base = person * 100
        # A member's local code counts through its concept (gold.concept: ICD10 E11.900).
        code = "LOCAL:A0002:DX:ZD-0301" if person % 4 == 0 else "ICD10:E11.900"
        if positive:  # recorded at the index visit (after its start)
            conds.append(_condition(base, person, code, E11, index + timedelta(hours=1)))
        elif person % 5 == 0:  # recorded only before the index time: not a label
            conds.append(_condition(base, person, code, E11, index - timedelta(days=400)))
        if person % 3 == 0:  # another diagnosis after the index: not a label
            conds.append(_condition(base + 1, person, "ICD10:I10.x00", I10, index + timedelta(1)))
    return feats, conds


def _condition(row_id: int, person: int, code: str, concept: int, at: datetime) -> dict[str, Any]:
    return {
        "condition_occurrence_id": row_id,
        "person_id": person,
        "condition_concept_id": concept,
        "condition_start_date": at.date(),
        "condition_start_datetime": at,
        "condition_source_value": code,
    }


@pytest.fixture(scope="module")
def tables(spark: SparkSession) -> TaskTables:
    suffix = np.random.default_rng().integers(1 << 40)
    features = dataclasses.replace(PATIENT_FEATURES, name=f"features.tab_pf_{suffix}")
    conditions = dataclasses.replace(SPECS["condition_occurrence"], name=f"gold.tab_co_{suffix}")
    concept = dataclasses.replace(SPECS["concept"], name=f"gold.tab_cn_{suffix}")
    feats, conds = _feature_rows(np.random.default_rng(7))
    upsert(spark, features, spark.createDataFrame(feats))
    upsert(spark, conditions, spark.createDataFrame(conds))
    concepts = [
        (E11, "Type 2 diabetes mellitus", "ICD10", "E11.900"),
        (I10, "Essential hypertension", "ICD10", "I10.x00"),
    ]
    cols = ["concept_id", "concept_name", "vocabulary_id", "concept_code"]
    upsert(spark, concept, spark.createDataFrame(concepts, cols))
    return TaskTables(features=features.name, conditions=conditions.name, concept=concept.name)


@pytest.fixture(scope="module")
def cfg(mlflow_server: Any) -> Settings:
    settings: Settings = mlflow_server.settings
    return settings


@pytest.fixture(scope="module")
def trained(spark: SparkSession, cfg: Settings, tables: TaskTables) -> tuple[Any, str]:
    name = f"t2dm-{np.random.default_rng().integers(1 << 40)}"
    return train(spark, cfg, tables=tables, name=name), name


def test_label_rule_counts_only_target_records_at_or_after_the_index(
    spark: SparkSession, tables: TaskTables
) -> None:
    rows = cohort(spark, tables, pin_versions(spark, tables), LabelRule(("ICD10:E11",)), 0)
    by_id = {r["index_id"]: r for r in rows.collect()}
    conds = spark.table(tables.conditions).collect()
    after = {
        r["person_id"]
        for r in conds
        if r["condition_concept_id"] == E11
        and r["condition_start_datetime"] > T0 - timedelta(days=100)
    }
    assert len(by_id) == PERSONS + PERSONS // 7
    for row in by_id.values():
        assert row["label"] == (1 if row["person_id"] in after else 0)
        assert row["split"] in {"train", "tuning", "held_out"}
    # The split is by person: both index rows of a person share it.
    assert by_id[70]["split"] == by_id[71]["split"]
    assert set(FEATURE_COLUMNS) <= set(rows.columns)


def test_training_logs_runs_with_data_versions_and_registers_the_champion(
    spark: SparkSession, cfg: Settings, tables: TaskTables, trained: tuple[Any, str]
) -> None:
    report, name = trained
    assert {c.name for c in report.candidates} == {"logreg", "hgb"}
    assert report.data_versions == pin_versions(spark, tables)
    assert set(report.data_versions) == {tables.features, tables.conditions, tables.concept}
    client = mlflow.MlflowClient()
    for cand in report.candidates:
        assert data_versions(cfg, cand.run_id) == report.data_versions
        run = client.get_run(cand.run_id)
        assert run.data.params["candidate"] == cand.name
        for metric in ("held_out_auroc", "held_out_auprc", "held_out_brier", "held_out_ece"):
            assert 0.0 <= run.data.metrics[metric] <= 1.0
        assert cand.metrics["held_out_auroc"] > 0.6  # the rows carry signal
    champion = client.get_model_version_by_alias(name, "champion")
    assert int(champion.version) == report.champion_version == 1
    assert champion.run_id == report.champion_run_id
    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == list(FEATURE_COLUMNS)


def test_reproduce_gives_the_logged_metrics(
    spark: SparkSession, cfg: Settings, trained: tuple[Any, str]
) -> None:
    report, _ = trained
    again = reproduce(spark, cfg, report.champion_run_id)
    assert again.equal, again.describe()
    assert {"held_out_auroc", "tuning_brier", "held_out_ece"} <= set(again.reproduced)


@pytest.mark.slow
def test_reproduce_every_candidate(
    spark: SparkSession, cfg: Settings, trained: tuple[Any, str]
) -> None:
    report, _ = trained
    for cand in report.candidates:
        assert reproduce(spark, cfg, cand.run_id).equal


def _predictions(name: str, tag: str) -> Any:
    return dataclasses.replace(MODEL_PREDICTIONS, name=f"gold.tab_pred_{tag}_{name.split('-')[1]}")


def test_scoring_writes_one_prediction_per_patient_once(
    spark: SparkSession, cfg: Settings, tables: TaskTables, trained: tuple[Any, str]
) -> None:
    report, name = trained
    out = _predictions(name, "a")
    first = score(spark, cfg, name=name, features_table=tables.features, output=out, run_id="r1")
    assert (first.eligible, first.scored, first.inserted) == (PERSONS, PERSONS, PERSONS)
    rows = spark.table(out.name).collect()
    assert len(rows) == PERSONS == len({r["person_id"] for r in rows})
    assert {r["model_version"] for r in rows} == {report.champion_version}
    assert {r["model_run_id"] for r in rows} == {report.champion_run_id}
    v0 = report.data_versions[tables.features]
    assert {r["features_version"] for r in rows} == {v0} == {first.features_version}
    assert all(r["index_id"] % 10 == 0 and 0.0 <= r["score"] <= 1.0 for r in rows)
    written = require_version(spark, out.name)

    again = score(spark, cfg, name=name, features_table=tables.features, output=out)
    assert (again.scored, again.inserted, again.updated) == (0, 0, 0)
    assert require_version(spark, out.name) == written  # nothing committed


@pytest.mark.slow
def test_scoring_rescores_only_changed_persons(
    spark: SparkSession, cfg: Settings, tables: TaskTables, trained: tuple[Any, str]
) -> None:
    _, name = trained
    out = _predictions(name, "b")
    first = score(spark, cfg, name=name, features_table=tables.features, output=out)
    # Two persons' features change: only they are scored again, from the new version.
    spec = dataclasses.replace(PATIENT_FEATURES, name=tables.features)
    changed = spark.table(tables.features).where("index_id in (10, 20)")
    changed = changed.withColumn("age_years", F.lit(88.0))
    upsert(spark, spec, changed)
    second = score(spark, cfg, name=name, features_table=tables.features, output=out)
    assert (second.scored, second.inserted, second.updated) == (2, 0, 2)
    versions = {r["person_id"]: r["features_version"] for r in spark.table(out.name).collect()}
    assert versions[1] == versions[2] == second.features_version > first.features_version
    assert sum(v == first.features_version for v in versions.values()) == PERSONS - 2


def test_bounds_and_missing_champion_are_catalogued(
    spark: SparkSession, cfg: Settings, tables: TaskTables
) -> None:
    small = cfg.model_copy(
        update={"models": cfg.models.model_copy(update={"max_training_rows": 10})}
    )
    with pytest.raises(LakehouseError) as too_many:
        train(spark, small, tables=tables, name="never-registered")
    assert too_many.value.code is ErrorCode.MODEL_TRAINING_TOO_LARGE
    with pytest.raises(LakehouseError) as none:
        score(spark, cfg, name="no-such-model", features_table=tables.features)
    assert none.value.code is ErrorCode.MODEL_NO_CHAMPION
