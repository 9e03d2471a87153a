"""The silver job end to end against the synthetic hospital's truth, in its own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: The first test may set up the session's silver scenario (its own process, minutes).
pytestmark = pytest.mark.timeout(3000)


@pytest.fixture(scope="module")
def scenario(silver_scenario: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """The silver scenario's result (tests/integration/conftest.py runs it once per session:
    the gold scenario continues on its data)."""
    return silver_scenario[1]


def _scores(result: dict[str, Any], key: str) -> list[dict[str, Any]]:
    scores: list[dict[str, Any]] = result[key]
    return scores


def test_every_true_record_once_with_the_right_code_value_and_unit(
    scenario: dict[str, Any],
) -> None:
    scores = _scores(scenario, "scores")
    tables = {s["table"] for s in scores}
    assert tables == {
        "silver.encounter",
        "silver.diagnosis",
        "silver.lab_result",
        "silver.medication_order",
    }
    sources = {(s["institution_code"], s["source_system"]) for s in scores}
    assert {("H0001", "his"), ("H0001", "lis"), ("A0001", "fhir"), ("A0002", "csv")} <= sources
    for s in scores:
        assert s["truth_rows"] > 0, s
        assert s["matched"] == s["truth_rows"] == s["silver_rows"], s


def test_late_corrections_in_the_his_reach_silver_on_the_next_run(
    scenario: dict[str, Any],
) -> None:
    assert scenario["corrections"] > 0
    before = {
        (s["table"], s["institution_code"]): s
        for s in _scores(scenario, "scores_before_corrections")
    }
    dx = before[("silver.diagnosis", "H0001")]
    assert dx["truth_rows"] - dx["matched"] == scenario["corrections"]
    third = {b["bronze_table"]: b for b in scenario["third"]}
    assert third["bronze.his_diagnoses"]["mode"] == "changes"
    assert third["bronze.his_diagnoses"]["written"]["silver.diagnosis"] == scenario["corrections"]


def test_a_rerun_without_new_bronze_reads_and_writes_nothing(scenario: dict[str, Any]) -> None:
    for b in scenario["again"]:
        assert b["mode"] == "unchanged", b
        assert b["rows_read"] == 0, b
        assert not b["written"], b


def test_notes_and_images_find_their_patient_through_the_encounter(
    scenario: dict[str, Any],
) -> None:
    notes = scenario["notes"]
    assert notes["silver"] == notes["truth"] > 0
    assert notes["with_patient"] == notes["silver"]
    assert notes["language_agrees"] == notes["silver"]
    imaging = scenario["imaging"]
    assert imaging["silver"] == imaging["truth"] > 0
    assert imaging["with_encounter_patient"] == imaging["silver"]


def test_patients_of_every_source_with_national_sex_codes(scenario: dict[str, Any]) -> None:
    patients = scenario["patients"]
    assert {"his", "lis", "emr", "fhir", "csv"} <= set(patients["by_source"])
    assert patients["sex_coded"] == patients["rows"]
    assert scenario["rejects"] == 0
