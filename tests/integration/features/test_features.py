"""Feature build and MEDS export on a few hand-built OMOP persons (omop_rows.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.features import FeatureBuildReport, FeatureTables, build_features
from lakehouse.features.meds import export_meds
from lakehouse.settings import Settings
from lakehouse.tables.features.ml import HISTORY_COLUMNS
from tests.integration.features.omop_rows import INDEX_P1, T, add_rows, measurement, write_gold

pytestmark = pytest.mark.spark


@dataclass
class Built:
    tables: FeatureTables
    first: FeatureBuildReport


@pytest.fixture(scope="module")
def built(spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Built:
    tables = FeatureTables.suffixed(tmp_path_factory.mktemp("f").name.replace("-", "_")[-12:])
    write_gold(spark, tables)
    return Built(tables, build_features(spark, settings, tables=tables))


def _patient(
    spark: Any, tables: FeatureTables, person: int, version: int | None = None
) -> dict[str, Any]:
    name = tables.patient_features.name
    df = (
        spark.sql(f"SELECT * FROM {name} VERSION AS OF {version}")
        if version is not None
        else spark.table(name)
    )
    row = df.where(F.col("person_id") == person).first()
    assert row is not None
    out: dict[str, Any] = row.asDict()
    return out


def _values(spark: Any, tables: FeatureTables, person: int) -> dict[str, float | None]:
    rows = (
        spark.table(tables.patient_feature_values.name)
        .where(F.col("person_id") == person)
        .select("feature", "value")
        .collect()
    )
    return {r["feature"]: r["value"] for r in rows}


def _encounters(spark: Any, tables: FeatureTables) -> dict[int, dict[str, Any]]:
    rows = spark.table(tables.encounter_features.name).drop("build_id").collect()
    return {r["visit_occurrence_id"]: r.asDict() for r in rows}


def test_patient_index_is_the_last_visit_start_and_persons_without_visits_are_left_out(
    spark: Any, built: Built
) -> None:
    idx = spark.table(built.tables.patient_index.name).where("cohort = 'patient'").collect()
    assert sorted(r["person_id"] for r in idx) == [1, 2]
    p1 = next(r for r in idx if r["person_id"] == 1)
    assert p1["index_time"].timestamp() == INDEX_P1.timestamp()
    assert p1["index_rule"] == "last_visit_start"
    enc = spark.table(built.tables.patient_index.name).where("cohort = 'encounter'").collect()
    assert sorted(r["visit_occurrence_id"] for r in enc) == [12, 13, 21]


def test_window_boundaries_include_the_start_and_exclude_the_index_time(
    spark: Any, built: Built
) -> None:
    v = _values(spark, built.tables, 1)
    # 304 at exactly index - 30 days is in; 305 one second earlier is not; 303 at the index
    # time is not. 302 (8.0, 11:00) is the latest value before the index.
    assert v["measurement:3004410:30d:count"] == 2.0
    assert v["measurement:3004410:30d:min"] == 8.0
    assert v["measurement:3004410:30d:max"] == 9.0
    assert v["measurement:3004410:30d:mean"] == 8.5
    assert v["measurement:3004410:30d:last"] == 8.0
    assert v["measurement:3004410:180d:count"] == 4.0
    assert v["measurement:3004410:180d:min"] == 1.0
    assert v["measurements_30d"] == 2.0
    # The emergency visit started 2024-06-01 10:00 (in 30d); the index visit is not history.
    assert v["visits_emergency_30d"] == 1.0
    assert v["visits_total_30d"] == 1.0
    assert v["visits_total_180d"] == 4.0
    assert v["visits_inpatient_180d"] == 2.0
    # Stays of 4 days 4 hours and 2 days.
    assert v["inpatient_days_180d"] == pytest.approx(4 + 4 / 24 + 2)
    assert v["inpatient_days_30d"] == 0.0
    # Date-only conditions count at the end of their day: 2024-06-01 is in 30d.
    assert v["conditions_30d"] == 1.0
    assert v["condition:201826:30d"] == 1.0
    assert v["conditions_180d"] == 2.0
    assert v["conditions_distinct_180d"] == 1.0
    assert v["age_years"] == 64.0
    assert v["sex_male"] == 1.0


def test_wide_columns_equal_the_long_values(spark: Any, built: Built) -> None:
    wide = _patient(spark, built.tables, 1)
    long = _values(spark, built.tables, 1)
    for c in ("age_years", "sex_male", *HISTORY_COLUMNS):
        assert wide[c] == long[c], c


def test_encounter_features_use_the_stay_and_history_before_discharge(
    spark: Any, built: Built
) -> None:
    e = _encounters(spark, built.tables)
    v12 = e[12]
    assert v12["index_time"].timestamp() == T(2024, 2, 5, 12).timestamp()
    assert v12["length_of_stay_days"] == pytest.approx(4 + 4 / 24)
    assert v12["visits_inpatient_30d"] == 0.0  # the index visit itself is not history
    assert v12["visits_outpatient_180d"] == 1.0
    assert v12["stay_conditions"] == 1.0
    assert v12["stay_drugs"] == 1.0
    assert v12["stay_measurements"] == 1.0
    assert v12["days_since_last_discharge"] is None
    v13 = e[13]
    assert v13["days_since_last_discharge"] == pytest.approx(14 + 22 / 24)
    assert v13["visits_inpatient_30d"] == 1.0
    assert v13["inpatient_days_30d"] == pytest.approx(4 + 4 / 24)


def test_readmission_label(spark: Any, built: Built) -> None:
    e = _encounters(spark, built.tables)
    assert e[12]["label_readmit"] is True  # readmitted 14.9 days later
    assert e[12]["days_to_readmission"] == pytest.approx(14 + 22 / 24)
    assert e[13]["label_readmit"] is False  # no inpatient visit; data reach day 30
    assert e[13]["days_to_readmission"] is None
    assert e[21]["label_readmit"] is None  # censored: the data end 6 days after discharge
    assert {r["label_horizon_days"] for r in e.values()} == {30}


def test_meds_export_layout_schema_and_order(spark: Any, built: Built, tmp_path: Path) -> None:
    out = tmp_path / "meds"
    result = export_meds(spark, out, tables=built.tables, shards=2, split_seed=7)
    shards = sorted((out / "data").glob("*.parquet"))
    assert shards
    assert result.shards == len(shards)
    seen: dict[int, str] = {}
    codes: set[str] = set()
    total = 0
    for shard in shards:
        table = pq.read_table(shard)
        schema = {f.name: str(f.type) for f in table.schema}
        assert schema == {
            "subject_id": "int64", "time": "timestamp[us]", "code": "string",
            "numeric_value": "float", "text_value": "string",
        }  # fmt: skip
        rows = table.to_pylist()
        total += len(rows)
        keys = [(r["subject_id"], r["time"] is not None, r["time"] or 0) for r in rows]
        assert keys == sorted(keys, key=lambda k: (k[0], k[1], k[2] if k[1] else 0))
        for r in rows:
            assert seen.setdefault(r["subject_id"], shard.name) == shard.name  # one file each
            codes.add(r["code"])
    assert total == result.events
    assert {"MEDS_BIRTH", "LOINC//4548-4", "ICD10//E11.9", "Visit//IP", "Gender//M"} <= codes
    meta = pq.read_table(out / "metadata" / "codes.parquet").to_pylist()
    assert {m["code"] for m in meta} == codes
    assert next(m for m in meta if m["code"] == "LOINC//4548-4")["description"].startswith(
        "Hemoglobin A1c"
    )
    splits = pq.read_table(out / "metadata" / "subject_splits.parquet").to_pylist()
    assert {s["subject_id"] for s in splits} == set(seen) == {1, 2, 3}
    assert {s["split"] for s in splits} <= {"train", "tuning", "held_out"}
    dataset = json.loads((out / "metadata" / "dataset.json").read_text())
    assert dataset["meds_version"].startswith("0.4")
    with pytest.raises(LakehouseError) as exc:
        export_meds(spark, out, tables=built.tables)
    assert exc.value.code is ErrorCode.FEATURES_EXPORT_TARGET
    again = export_meds(spark, out, tables=built.tables, shards=2, split_seed=7, overwrite=True)
    assert again.events == result.events
    assert pq.read_table(out / "metadata" / "subject_splits.parquet").to_pylist() == splits


def test_later_events_never_change_features_and_old_versions_stay_readable(
    spark: Any, settings: Settings, built: Built
) -> None:
    tables, first = built.tables, built.first
    before = _encounters(spark, tables)
    p2_before = _patient(spark, tables, 2)
    # After (or at) every index time they could leak into ...
    add_rows(spark, tables, "measurement", [measurement(306, 1, T(2024, 8, 1, 10), 99.0, None)])
    add_rows(spark, tables, "condition_occurrence", [
        {"condition_occurrence_id": 202, "person_id": 2, "condition_concept_id": 201826,
         "condition_start_date": T(2024, 6, 26).date(), "condition_type_concept_id": 32817},
    ])  # fmt: skip
    # ... and one at exactly visit 12's discharge, before person 1's patient index.
    add_rows(spark, tables, "drug_exposure", [
        {"drug_exposure_id": 402, "person_id": 1, "drug_concept_id": 1503297,
         "drug_exposure_start_date": T(2024, 2, 5).date(),
         "drug_exposure_start_datetime": T(2024, 2, 5, 12), "drug_exposure_end_date":
         T(2024, 2, 6).date(), "drug_type_concept_id": 32817, "visit_occurrence_id": 12},
    ])  # fmt: skip
    second = build_features(spark, settings, tables=tables)

    after = _encounters(spark, tables)
    # Visit 12 (index: its discharge, the drug's own time) and visit 21 see nothing new,
    # labels included; visit 13, discharged later, sees the drug in its history.
    assert after[12] == before[12]
    assert after[21] == before[21]
    assert after[13]["drugs_30d"] == before[13]["drugs_30d"] + 1
    after_p2 = _patient(spark, tables, 2)
    assert {k: v for k, v in after_p2.items() if k != "build_id"} == {
        k: v for k, v in p2_before.items() if k != "build_id"
    }
    assert _patient(spark, tables, 1)["measurements_365d"] == 4.0
    assert _patient(spark, tables, 1)["drugs_180d"] == 2.0
    assert second.updated[tables.patient_features.name] == 1  # person 1's row only
    assert second.updated[tables.encounter_features.name] == 1  # visit 13 only

    # Reproducibility: the first build's feature version still reads the first values, and
    # features.builds names the gold versions each build read.
    v1 = first.output_versions[tables.patient_features.name]
    assert _patient(spark, tables, 1, version=v1)["drugs_180d"] == 1.0
    builds = {r["build_id"]: r for r in spark.table(tables.builds.name).collect()}
    assert builds[first.build_id]["gold_versions"] == first.gold_versions
    assert builds[second.build_id]["output_versions"] == second.output_versions
    drug_table = tables.gold["drug_exposure"]
    assert second.gold_versions[drug_table] == first.gold_versions[drug_table] + 1


@pytest.mark.slow
def test_a_build_from_logged_gold_versions_reproduces_the_old_features(
    spark: Any, settings: Settings, built: Built
) -> None:
    tables, first = built.tables, built.first
    again = build_features(
        spark, settings, tables=tables, gold_versions=first.gold_versions, meds=False
    )
    v1 = first.output_versions[tables.patient_features.name]
    old = spark.sql(f"SELECT * FROM {tables.patient_features.name} VERSION AS OF {v1}").drop(
        "build_id"
    )
    now = spark.table(tables.patient_features.name).drop("build_id")
    assert again.gold_versions == first.gold_versions
    assert old.exceptAll(now).count() == 0
    assert now.exceptAll(old).count() == 0
