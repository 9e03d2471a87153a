"""The gold job end to end: OMOP tables from the silver scenario, reconciled with the truth,
incremental, ids stable (tests/integration/gold/gold_scenario.py, its own process)."""

from __future__ import annotations

from typing import Any

import pytest

#: The first test sets up the session's silver scenario and then the gold scenario (EMPI and
#: three gold runs in a second process): heavy, so ``make test-all`` runs it.
pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(3000)]


def test_counts_reconcile_with_the_truth(gold_scenario: dict[str, Any]) -> None:
    checks = gold_scenario["reconcile"]
    whats = {c["what"] for c in checks}
    assert whats == {"persons", "visits", "conditions", "lab measurements", "drug exposures"}
    sites = {c["institution_code"] for c in checks if c["what"] == "visits"}
    assert {"H0001", "A0001", "A0002"} <= sites
    for c in checks:
        assert c["truth"] > 0, c
        assert c["gold"] == c["truth"], c


def test_every_clinical_table_is_built(gold_scenario: dict[str, Any]) -> None:
    tables = gold_scenario["tables"]
    for name in (
        "person", "observation_period", "visit_occurrence", "condition_occurrence",
        "drug_exposure", "measurement", "note", "care_site", "provider",
        "location", "concept", "vocabulary", "domain", "source_to_concept_map", "cdm_source",
    ):  # fmt: skip
        assert tables[name] > 0, name
    # no source names a lab's specimen type: no specimen rows (lakehouse.gold.clinical.specimen)
    assert tables["specimen"] == 0
    # one observation period per person
    assert tables["observation_period"] == tables["person"]


def test_the_synthetic_hospital_passes_every_dqd_check_that_applies(
    gold_scenario: dict[str, Any],
) -> None:
    """Issue #7's acceptance: at the published DQD thresholds, no check fails (checks that do
    not apply, e.g. to tables the hospital does not fill, are not_applicable)."""
    dqd = gold_scenario["dqd"]
    if dqd["threshold_sources"] != ["dqd-csv"]:
        pytest.skip("the published DQD thresholds (../shared/refdata/omop-dqd-checks) are absent")
    assert dqd["counts"]["pass"] > 500, dqd["counts"]
    assert dqd["failed"] == {}


def test_a_rerun_without_changes_does_nothing(gold_scenario: dict[str, Any]) -> None:
    again = gold_scenario["again"]
    assert again["mode"] == "unchanged"
    assert not any(k.endswith((".written", ".deleted")) and not k.startswith("cdm_source")
                   for k in again["counts"]), again  # fmt: skip


def test_changes_rebuild_only_the_persons_touched(gold_scenario: dict[str, Any]) -> None:
    third = gold_scenario["third"]
    assert third["mode"] == "changes"
    # the corrected diagnosis's person, the deleted lab's person, the two merged persons
    assert 1 <= third["persons_in_scope"] <= 4
    assert gold_scenario["corrected_concepts"] == [gold_scenario["expected_concept"]]
    assert gold_scenario["deleted_lab_rows"] == 0
    before, after = gold_scenario["tables"], gold_scenario["tables_after"]
    assert after["measurement"] == before["measurement"] - 1
    assert after["person"] == before["person"] - 1


def test_a_merge_moves_events_to_the_surviving_person(gold_scenario: dict[str, Any]) -> None:
    assert gold_scenario["absorbed_person_rows"] == 0
    assert gold_scenario["absorbed_periods"] == 0
    assert gold_scenario["survivor_events"] == gold_scenario["events_before_merge"]


def test_ids_are_stable_across_runs(gold_scenario: dict[str, Any]) -> None:
    assert gold_scenario["ids_before"] > 0
    assert gold_scenario["ids_kept"] == gold_scenario["ids_before"]
