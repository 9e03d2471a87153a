"""The multimodal data for real: a tiny synthetic hospital's DICOM files decoded by the pixel
step into Delta, and the cohort (label, split, tabular, de-identified text, image) in Spark.

The hospital (14 patients, main site only, no dirt) is generated here in about a second;
the silver, gold and feature rows the cohort joins are made from its truth under table names
of this module (the full pipeline is the silver/gold scenarios' job), so the test asserts
exact things: each person's label is the truth's COPD outcome, each image equals the DICOM
pixels of the newest study at or before the index scaled to [0, 1], the text holds the
person's de-identified notes before the index and no PHI span of the truth, and the versions
read are the ones returned. A truncated and a missing file land in the quarantine; a rerun
(slow) decodes only those again and commits nothing to the pixel table.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.features.images import build_image_pixels, scale
from lakehouse.settings import Settings
from lakehouse.synthetic import DirtRates, HospitalConfig, generate
from lakehouse.synthetic.dicom import pixels
from lakehouse.synthetic.model import ImagingStudy
from lakehouse.tables.features.images import IMAGE_PIXELS, IMAGE_PIXELS_QUARANTINE
from lakehouse.tables.features.ml import HISTORY_COLUMNS, PATIENT_FEATURES
from lakehouse.tables.gold.omop import SPECS
from lakehouse.tables.silver.imaging import IMAGING_SERIES, IMAGING_STUDY
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.silver.person_index import PERSON_INDEX
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.versions import require_version
from models.multimodal.dataset import (
    FRAME_COLUMNS,
    IMAGE_SIZE,
    MULTIMODAL_TASK,
    TABULAR_COLUMNS,
    MultimodalTables,
    cohort_frame,
    collect,
)

SEED = 5
PATIENTS = 14
SITE = "H0001"


def _truth(out: Path, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(out / "truth" / f"{name}.parquet").to_pylist()
    return rows


def _write(spark: SparkSession, spec: TableSpec, rows: list[dict[str, Any]]) -> None:
    """The rows as a Delta table named like ``spec`` (one plain write: cheaper than MERGE)."""
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {spec.name.split('.')[0]}")
    spark.createDataFrame(rows).write.format("delta").saveAsTable(spec.name)


def _named(spec: TableSpec, suffix: str) -> TableSpec:
    layer, table = spec.name.split(".")
    return dataclasses.replace(spec, name=f"{layer}.mm_{table}_{suffix}")


@pytest.fixture(scope="module")
def world(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("mm") / "hospital"
    generate(out, HospitalConfig(patients=PATIENTS, sites=1, seed=SEED, dirt=DirtRates.clean()))
    suffix = str(np.random.default_rng().integers(1 << 40))
    specs = {
        "study": _named(IMAGING_STUDY, suffix),
        "series": _named(IMAGING_SERIES, suffix),
        "pixels": _named(IMAGE_PIXELS, suffix),
        "quarantine": _named(IMAGE_PIXELS_QUARANTINE, suffix),
        "features": _named(PATIENT_FEATURES, suffix),
        "conditions": _named(SPECS["condition_occurrence"], suffix),
        "person": _named(SPECS["person"], suffix),
        "person_index": _named(PERSON_INDEX, suffix),
        "notes": _named(NOTE_DEID, suffix),
    }
    persons = _truth(out, "persons")
    gold_id = {p["person_id"]: i + 1 for i, p in enumerate(persons)}
    encounters = _truth(out, "encounters")
    by_enc = {e["encounter_id"]: e for e in encounters}
    index_time: dict[str, Any] = {}
    for e in encounters:
        pid = e["person_id"]
        index_time[pid] = max(index_time.get(pid, e["start"]), e["start"])
    risk = {r["person_id"]: r for r in _truth(out, "lung_risk")}
    labels = _truth(out, "image_labels")
    # A copy of one file truncated, and a reference to a file that does not exist.
    broken = labels[0]
    cut = out / "pacs_truncated.dcm"
    cut.write_bytes((out / broken["file"]).read_bytes()[:600])
    study_rows, series_rows = [], []
    extra = [("trunc", cut), ("missing", out / "nowhere.dcm")]
    for lab in [*labels, *({**broken, "study_id": s, "file": str(f)} for s, f in extra)]:
        enc = by_enc[lab["encounter_id"]]
        path = Path(lab["file"]) if Path(lab["file"]).is_absolute() else out / lab["file"]
        key = {"institution_code": SITE, "source_system": "pacs", "is_deleted": False}
        study_rows.append(
            {
                **key,
                "study_instance_uid": lab["study_id"],
                "patient_key": f"{SITE}|{lab['person_id']}",
                "study_at": enc["start"] + timedelta(hours=2),
                "bronze_table": "bronze.pacs_dicom_instances",
            }
        )
        series_rows.append(
            {
                **key,
                "series_instance_uid": lab["study_id"] + ".1",
                "study_instance_uid": lab["study_id"],
                "sop_instance_uids": [lab["sop_instance_uid"]],
                "pixel_data_refs": [path.resolve().as_uri()],
                "bronze_table": "bronze.pacs_dicom_instances",
            }
        )
    _write(spark, specs["study"], study_rows)
    _write(spark, specs["series"], series_rows)

    feats = []
    for p in persons:
        row: dict[str, Any] = dict.fromkeys(HISTORY_COLUMNS, 0.0)
        row.update(
            index_id=gold_id[p["person_id"]] * 10,
            person_id=gold_id[p["person_id"]],
            index_time=index_time[p["person_id"]],
            age_years=float((index_time[p["person_id"]].date() - p["birth_date"]).days // 365),
            sex_male=1.0 if p["sex"] == "M" else 0.0,
            build_id="b1",
        )
        feats.append(row)
    _write(spark, specs["features"], feats)
    conds = [
        {
            "condition_occurrence_id": i + 1,
            "person_id": gold_id[d["person_id"]],
            "condition_start_date": by_enc[d["encounter_id"]]["start"].date(),
            "condition_start_datetime": by_enc[d["encounter_id"]]["start"],
            "condition_source_value": f"ICD10:{d['icd10']}",
        }
        for i, d in enumerate(_truth(out, "diagnoses"))
    ]
    _write(spark, specs["conditions"], conds)
    _write(
        spark,
        specs["person"],
        [{"person_id": gold_id[p], "person_source_value": f"EMPI-{p}"} for p in gold_id],
    )
    _write(
        spark,
        specs["person_index"],
        [
            {
                "institution_code": SITE,
                "source_system": "his",
                "patient_key": f"{SITE}|{p}",
                "patient_id": p,
                "person_id": f"EMPI-{p}",
                "is_deleted": False,
            }
            for p in gold_id
        ],
    )
    # The de-identification job's stand-in: every PHI span of the truth replaced by [PHI].
    spans: dict[str, list[dict[str, Any]]] = {}
    for a in _truth(out, "note_annotations"):
        spans.setdefault(a["note_id"], []).append(a)
    notes = []
    for doc in _truth(out, "documents"):
        if doc["source"] != "notes":  # CDA documents are not the notes' (silver.note_deid)
            continue
        text = (out / doc["file"]).read_text("utf-8")
        for a in sorted(spans.get(doc["doc_id"], []), key=lambda a: -a["start"]):
            if a["kind"] == "phi":
                text = text[: a["start"]] + "[PHI]" + text[a["end"] :]
        notes.append(
            {
                "institution_code": SITE,
                "source_system": "notes",
                "note_id": doc["doc_id"],
                "patient_key": f"{SITE}|{doc['person_id']}",
                "recorded_at": by_enc[doc["encounter_id"]]["start"] + timedelta(hours=3),
                "text_deid": text,
            }
        )
    _write(spark, specs["notes"], notes)
    return {
        "out": out,
        "specs": specs,
        "gold_id": gold_id,
        "index_time": index_time,
        "risk": risk,
        "labels": labels,
        "notes": notes,
        "encounters": by_enc,
        "phi": [a["text"] for a in _truth(out, "note_annotations") if a["kind"] == "phi"],
        "tables": MultimodalTables(
            features=specs["features"].name,
            conditions=specs["conditions"].name,
            concept=None,
            person=specs["person"].name,
            person_index=specs["person_index"].name,
            notes=specs["notes"].name,
            images=specs["pixels"].name,
        ),
    }


def _pixel_tables(world: dict[str, Any]) -> dict[str, Any]:
    specs = world["specs"]
    return {
        "studies": specs["study"].name,
        "series": specs["series"].name,
        "output": specs["pixels"],
        "quarantine": specs["quarantine"],
    }


def test_pixels_then_cohort_match_the_truth(
    spark: SparkSession, settings: Settings, world: dict[str, Any]
) -> None:
    specs = world["specs"]
    first = build_image_pixels(spark, run_id="r1", **_pixel_tables(world))
    n_studies = len(world["labels"])
    assert (first.decoded, first.quarantined) == (n_studies, 2)
    codes = {
        r["study_instance_uid"]: r["error_code"]
        for r in spark.table(specs["quarantine"].name).collect()
    }
    assert codes == {
        "trunc": ErrorCode.IMAGE_PIXELS_UNDECODABLE.id,
        "missing": ErrorCode.IMAGE_FILE_UNREADABLE.id,
    }

    frame, versions = cohort_frame(spark, settings, tables=world["tables"])
    assert tuple(frame.columns) == FRAME_COLUMNS
    tables: MultimodalTables = world["tables"]
    assert versions == {name: require_version(spark, name) for name in tables.required()}
    data = collect(frame, versions, max_rows=1000)
    assert data.task == MULTIMODAL_TASK
    assert data.tabular.shape == (PATIENTS, len(TABULAR_COLUMNS))
    assert data.image.shape == (PATIENTS, IMAGE_SIZE, IMAGE_SIZE)
    assert set(data.split) <= {"train", "tuning", "held_out"}

    by_gold = {v: k for k, v in world["gold_id"].items()}
    for i, gid in enumerate(data.person_id):
        pid = by_gold[int(gid)]
        t = world["index_time"][pid]
        assert data.label[i] == int(world["risk"][pid]["copd"]), pid
        # The image: the newest study at or before the index, its DICOM pixels scaled.
        studies = [
            lab
            for lab in world["labels"]
            if lab["person_id"] == pid
            and world["encounters"][lab["encounter_id"]]["start"] + timedelta(hours=2) <= t
        ]
        assert data.has_image[i] == bool(studies)
        if studies:
            lab = max(
                studies,
                key=lambda s: (world["encounters"][s["encounter_id"]]["start"], s["study_id"]),
            )
            study = ImagingStudy(
                lab["study_id"],
                lab["modality"],
                lab["finding"],
                (lab["center_x"], lab["center_y"]),
                lab["radius"],
                world["encounters"][lab["encounter_id"]]["start"],
                lab["emphysema"],
            )
            expected = scale(pixels(SEED, study).astype(np.float64))
            np.testing.assert_array_equal(data.image[i], expected)
        else:
            assert not data.image[i].any()
        # The text: the person's de-identified notes strictly before the index, oldest first.
        before = sorted(
            (n for n in world["notes"] if n["patient_key"] == f"{SITE}|{pid}"),
            key=lambda n: (n["recorded_at"], n["note_id"]),
        )
        expected_text = "\n\n".join(n["text_deid"] for n in before if n["recorded_at"] < t)
        assert data.text[i] == expected_text[-4000:]
        for phi in world["phi"]:
            assert phi not in data.text[i]
    assert data.label.sum() > 0
    assert data.has_image.sum() > 0
    assert any(data.text)

    with pytest.raises(LakehouseError) as exc:
        collect(frame, versions, max_rows=PATIENTS - 1)
    assert exc.value.code is ErrorCode.MODEL_TRAINING_TOO_LARGE


@pytest.mark.slow
def test_a_rerun_decodes_only_the_quarantined_studies_again(
    spark: SparkSession, world: dict[str, Any]
) -> None:
    build_image_pixels(spark, run_id="r1", **_pixel_tables(world))  # a no-op after the above
    versions = require_version(spark, world["specs"]["pixels"].name)
    again = build_image_pixels(spark, run_id="r2", **_pixel_tables(world))
    assert (again.pending, again.decoded, again.quarantined) == (2, 0, 2)
    assert require_version(spark, world["specs"]["pixels"].name) == versions
