"""Rules as data: loading, validation, compilation and DQD rule generation (no JVM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.quality.compile import compile_rule, groups
from lakehouse.quality.dqd import _bound, dqd_rules, load_thresholds
from lakehouse.quality.rules import CHECK_TYPES, load_rules, parse_rule
from lakehouse.settings import QualitySettings

GOOD: dict[str, Any] = {
    "id": "T-1",
    "table": "silver.encounter",
    "kahn": {"category": "plausibility", "subcategory": "temporal"},
    "check": {"type": "temporal_order", "before": "admit_at", "after": "discharge_at"},
}


def test_the_shipped_rules_load_compile_and_cover_every_kahn_category() -> None:
    rules = load_rules()
    assert len({r.id for r in rules}) == len(rules) >= 30
    for r in rules:
        compiled = compile_rule(r)
        assert compiled.violation
    assert {r.category for r in rules} >= {"completeness", "conformance", "plausibility",
                                           "timeliness"}  # fmt: skip
    assert {r.rule_layer for r in rules} == {"bronze", "silver"}
    assert {r.check_type for r in rules} == set(CHECK_TYPES)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": ""}, "needs an id"),
        ({"table": "encounter"}, "<schema>.<table>"),
        ({"kahn": {"category": "accuracy"}}, "kahn category"),
        ({"kahn": {"category": "conformance", "subcategory": "temporal"}}, "subcategory"),
        ({"check": {"type": "regex"}}, "check type"),
        ({"check": {"type": "foreign_key", "columns": ["a"]}}, "ref_table"),
        ({"threshold": 120}, "percent"),
        ({"severity": "critical"}, "severity"),
    ],
)
def test_an_invalid_rule_is_refused_with_its_code(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(LakehouseError) as exc:
        parse_rule({**GOOD, **change}, file="x.yaml")
    assert exc.value.code is ErrorCode.DQ_RULE_INVALID
    assert reason in str(exc.value)


def test_duplicate_rule_ids_across_files_are_refused(tmp_path: Path) -> None:
    text = "rules:\n  - id: T-1\n    table: silver.encounter\n    kahn: {category: completeness}\n"
    text += "    check: {type: not_null, column: encounter_id}\n"
    (tmp_path / "a.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(LakehouseError) as exc:
        load_rules(tmp_path)
    assert exc.value.code is ErrorCode.DQ_RULE_INVALID


def test_templates_compile_to_null_safe_sql() -> None:
    rule = parse_rule(GOOD)
    c = compile_rule(rule)
    assert c.violation == "t.`discharge_at` < t.`admit_at`"
    check = {"type": "foreign_key", "columns": ["a", "b"], "ref_table": "x.y",
             "ref_columns": ["c", "d"]}  # fmt: skip
    fk = parse_rule({**GOOD, "check": check})
    cf = compile_rule(fk)
    (lk,) = cf.lookups
    assert cf.violation.startswith("t.`a` IS NOT NULL AND t.`b` IS NOT NULL")
    assert lk.table == "x.y"
    assert [r for _, r in lk.on] == ["c", "d"]


def test_rules_whose_lookups_clash_run_in_separate_queries() -> None:
    def with_lookup(rid: str, table: str) -> Any:
        return compile_rule(parse_rule({**GOOD, "id": rid, "lookups": {
            "p": {"table": table, "on": {"k": "k"}, "columns": ["v"]}},
            "check": {"type": "violated_when", "sql": "p.v IS NULL"}}))  # fmt: skip

    a, b, c = with_lookup("A", "x.one"), with_lookup("B", "x.one"), with_lookup("C", "x.two")
    assert [[m.rule.id for m in g] for g in groups([a, b, c])] == [["A", "B"], ["C"]]


def test_dqd_structural_checks_derive_from_the_cdm_spec_without_files() -> None:
    rules, skipped = dqd_rules(load_thresholds(None))
    ids = {r.id for r in rules}
    assert skipped == []
    assert {r.threshold for r in rules} == {0.0}
    assert {r.threshold_source for r in rules} == {"cdm-spec"}
    assert "DQD-person-person_id-isPrimaryKey" in ids
    assert "DQD-measurement-person_id-isForeignKey" in ids
    assert "DQD-visit_occurrence-visit_concept_id-fkDomain" in ids
    assert "DQD-condition_occurrence-condition_concept_id-isStandardValidConcept" in ids
    assert "DQD-measurement-measurement_source_concept_id-isStandardValidConcept" not in ids


def test_dqd_plausible_values_translate_from_sql_server() -> None:
    assert _bound("'19500101'", True) == "DATE'1950-01-01'"
    assert _bound("DATEADD(dd,1,GETDATE())", True) == "date_add(current_date(), 1)"
    assert _bound("YEAR(GETDATE())+1", False) == "year(current_date()) + 1"
    assert _bound("1850", False) == "1850"
    assert _bound("GETDATE()-7", True) is None


def test_missing_threshold_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LakehouseError) as exc:
        load_thresholds(tmp_path)
    assert exc.value.code is ErrorCode.DQ_THRESHOLDS_INVALID


def test_the_threshold_folder_defaults_to_refdata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_REFDATA", "/some/refdata")
    assert QualitySettings.model_validate({}).dqd_thresholds_dir == Path(
        "/some/refdata/omop-dqd-checks"
    )
    assert QualitySettings.model_validate({"dqd_thresholds_dir": None}).dqd_thresholds_dir is None
    monkeypatch.delenv("LAKEHOUSE_REFDATA")
    assert QualitySettings.model_validate({}).dqd_thresholds_dir is None


@pytest.mark.refdata
def test_dqd_checks_read_the_published_thresholds(refdata: Path) -> None:
    th = load_thresholds(refdata / "omop-dqd-checks")
    rules, _ = dqd_rules(th)
    by_id = {r.id: r for r in rules}
    assert {r.threshold_source for r in rules} == {"dqd-csv"}
    assert (
        by_id["DQD-measurement-measurement_concept_id-standardConceptRecordCompleteness"].threshold
        == 5
    )
    assert by_id["DQD-visit_occurrence-visit_start_date-plausibleStartBeforeEnd"].threshold == 1
    assert (
        by_id["DQD-measurement-measurement_date-plausibleAfterBirth"].severity == "characterization"
    )
    assert by_id["DQD-visit_occurrence-visit_concept_id-fkDomain"].check["sql"].endswith("'Visit'")
    assert by_id["DQD-person-year_of_birth-plausibleValueLow"].check["sql"].endswith("< 1850")
    assert any(r.check_name == "plausibleGender" for r in rules)
    assert any(r.check_name == "measurePersonCompleteness" for r in rules)
