"""The lung risk behind the multimodal task: drawn apart, expressed once per modality."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from lakehouse.synthetic import HospitalReport
from lakehouse.synthetic.dicom import pixels
from lakehouse.synthetic.model import ImagingStudy
from lakehouse.synthetic.population import (
    RISK_THRESHOLD,
    RISK_WEIGHTS,
    build_sites,
    build_staff,
    generate_patient,
)


def truth(report: HospitalReport, entity: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(
        report.out / "truth" / f"{entity}.parquet"
    ).to_pylist()
    return rows


def test_copd_is_recorded_at_the_last_encounter_exactly_when_the_score_is_high(
    clean_hospital: HospitalReport,
) -> None:
    risk = {r["person_id"]: r for r in truth(clean_hospital, "lung_risk")}
    assert set(risk) == {p["person_id"] for p in truth(clean_hospital, "persons")}
    last: dict[str, tuple[datetime, str]] = {}
    for e in truth(clean_hospital, "encounters"):
        key = (e["start"], e["encounter_id"])
        last[e["person_id"]] = max(last.get(e["person_id"], key), key)
    copd = {
        d["person_id"]: d for d in truth(clean_hospital, "diagnoses") if d["condition"] == "COPD"
    }
    for pid, r in risk.items():
        expected = (
            RISK_WEIGHTS["age"] * r["age_part"]
            + RISK_WEIGHTS["smoking"] * r["smoking"]
            + RISK_WEIGHTS["emphysema"] * r["emphysema"]
            + r["noise"]
        )
        if 0 < r["emphysema"] < 2.5:  # the image shows the latent clipped to [0, 2.5]
            assert abs(r["score"] - expected) < 1e-9
        assert r["copd"] == (r["score"] > RISK_THRESHOLD)
        assert (pid in copd) == r["copd"]
        if r["copd"]:
            assert copd[pid]["encounter_id"] == r["copd_encounter_id"] == last[pid][1]
            assert copd[pid]["icd10"] == "J44.900"
            assert not copd[pid]["primary"]
    assert 0 < sum(r["copd"] for r in risk.values()) < len(risk)


def test_smoking_sentences_follow_the_smoker_kind(clean_hospital: HospitalReport) -> None:
    risk = {r["person_id"]: r for r in truth(clean_hospital, "lung_risk")}
    seen: dict[str, set[str | None]] = defaultdict(set)
    for a in truth(clean_hospital, "note_annotations"):
        if a["label"] == "RISK_FACTOR":
            assert a["concept"] == "RISK:smoking"
            seen[risk[a["person_id"]]["smoker"]].add(a["assertion"])
    assert seen["never"] == {"negated"}
    assert seen["heavy"] | seen["light"] == {"present"}


def test_every_study_of_a_person_shows_their_emphysema(clean_hospital: HospitalReport) -> None:
    risk = {r["person_id"]: r for r in truth(clean_hospital, "lung_risk")}
    labels = truth(clean_hospital, "image_labels")
    assert labels
    for lab in labels:
        assert lab["emphysema"] == risk[lab["person_id"]]["emphysema"]


def test_emphysema_darkens_the_lungs_and_leaves_other_images_alone() -> None:
    study = ImagingStudy("E00000001-01-S", "CR", "normal", (30, 30), 10, datetime(2026, 1, 1))
    before = pixels(7, study).astype(float)
    again = pixels(7, dataclasses.replace(study, emphysema=0.0)).astype(float)
    assert np.array_equal(before, again)
    darker = pixels(7, dataclasses.replace(study, emphysema=2.0)).astype(float)
    assert darker.mean() < before.mean() - 20


def test_the_risk_stream_is_its_own() -> None:
    """The person, conditions and encounter dates come from the patient's stream as before."""
    sites = build_sites(3)
    staff = build_staff(42, sites)
    p = generate_patient(42, 17, sites, staff)
    q = generate_patient(42, 17, sites, staff)
    assert p.risk == q.risk
    assert p.person.person_id == "P00000017"
    assert p.risk is not None
    assert p.risk.smoker == (
        "heavy" if p.risk.smoking > 1 else "light" if p.risk.smoking > 0 else "never"
    )
