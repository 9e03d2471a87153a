"""Without Spark: FHIR ids round-trip, search parameters become the intended SQL
conditions (or catalogued refusals), built resources validate as FHIR, and the
CapabilityStatement lists every type served."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class

from lakehouse.errors import ErrorCode, LakehouseError
from serving.fhir.api import capability_statement, outcome
from serving.fhir.ids import decode, encode
from serving.fhir.resources import KINDS
from serving.fhir.search import parse

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    "key", [("H1", "P1"), ("H1", "lis", "ORD1|4548-4"), ("H0001", "his", "张.三-1"), ("a.b", "")]
)
def test_ids_round_trip_and_use_only_fhir_id_characters(key: tuple[str, ...]) -> None:
    fhir_id = encode(*key)
    assert all(ch.isascii() and (ch.isalnum() or ch in ".-") for ch in fhir_id)
    if all(key):
        assert decode(fhir_id, len(key)) == key
    else:
        assert decode(fhir_id, len(key)) is None  # empty parts are never ids


@pytest.mark.parametrize("bad", ["H1-P1-x", "H1", "a.ZZ-b", "a.C3-b", "a/b-c", "x" * 65])
def test_malformed_ids_decode_to_nothing(bad: str) -> None:
    assert decode(bad, 2) is None


def _sql(params: list[tuple[str, str]], kind: str = "Observation") -> str:
    found = parse(KINDS[kind], params, ZONE)
    return " AND ".join(w.sql(dialect="spark") for w in found.where)


def test_search_parameters_become_conditions() -> None:
    assert _sql([("patient", "Patient/H1-P1")]) == (
        "`institution_code` = 'H1' AND `patient_id` = 'P1'"
    )
    code = _sql([("code", "http://loinc.org|4548-4")])
    assert "`test_standard_vocabulary` = 'LOINC' AND `test_standard_code` = '4548-4'" in code
    assert "`test_source_code` = '4548-4'" in code
    assert _sql([("code", "http://snomed.info/sct|1")]) == "(FALSE)"
    day = _sql([("date", "2024-03-01")])
    assert day == (
        "`collected_at` >= CAST('2024-03-01 00:00:00' AS TIMESTAMP) "
        "AND `collected_at` < CAST('2024-03-02 00:00:00' AS TIMESTAMP)"
    )
    assert _sql([("date", "gt2024-12")]) == (
        "`collected_at` >= CAST('2025-01-01 00:00:00' AS TIMESTAMP)"
    )
    assert _sql([("date", "le2024")]) == "`collected_at` < CAST('2025-01-01 00:00:00' AS TIMESTAMP)"
    # A dateTime with a zone is compared in the lakehouse's local time.
    assert _sql([("date", "lt2024-01-01T00:00:00Z")]) == (
        "`collected_at` < CAST('2024-01-01 08:00:00' AS TIMESTAMP)"
    )
    paged = parse(KINDS["Observation"], [("_count", "5"), ("_offset", "10")], ZONE)
    assert (paged.count, paged.offset) == (5, 10)


@pytest.mark.parametrize(
    "params",
    [
        [("value-quantity", "7")],
        [("date", "2024-13-01")],
        [("date", "since 2024")],
        [("_count", "1000")],
        [("patient", "P1")],
        [("code", "http://loinc.org|")],
        [("_include", "Observation:encounter")],
        [("_format", "xml")],
    ],
)
def test_invalid_search_parameters_are_refused(params: list[tuple[str, str]]) -> None:
    with pytest.raises(LakehouseError) as caught:
        parse(KINDS["Observation"], params, ZONE)
    assert caught.value.code is ErrorCode.FHIR_SEARCH_INVALID
    assert params[0][1] not in caught.value.render() or params[0][1] in ("", "xml")


def test_unknown_parameter_names_are_not_echoed() -> None:
    with pytest.raises(LakehouseError) as caught:
        parse(KINDS["Patient"], [("张三", "1")], ZONE)
    assert "张三" not in caught.value.render()
    with pytest.raises(LakehouseError) as caught:
        parse(KINDS["Patient"], [("gender", "male")], ZONE)
    assert "gender" in caught.value.render()


def test_built_resources_validate_and_drop_empty_elements() -> None:
    base = {"institution_code": "H1", "source_system": "lis", "patient_id": "P1"}
    obs = KINDS["Observation"].build(
        {
            **base,
            "result_id": "R1",
            "test_source_code": "GLU",
            "test_source_vocabulary": "LOCAL:H1:lab",
            "test_source_name": "血糖",
            "value_source": "阴性",
            "abnormal_flag": "x",
            "result_status": "F",
            "collected_at": datetime(2024, 3, 1, 0, 30, tzinfo=UTC),
        },
        ZONE,
    )
    get_fhir_model_class("Observation").model_validate(obs)
    assert obs["valueString"] == "阴性"
    assert obs["effectiveDateTime"] == "2024-03-01T08:30:00+08:00"
    assert obs["code"] == {
        "coding": [{"system": "urn:lakehouse:H1:vocabulary:LOCAL:H1:lab", "code": "GLU",
                    "display": "血糖"}],
        "text": "血糖",
    }  # fmt: skip
    assert "interpretation" not in obs
    assert "referenceRange" not in obs
    patient = KINDS["Patient"].build(
        {**base, "sex_code": "2", "birth_date": date(1990, 1, 2)}, ZONE
    )
    get_fhir_model_class("Patient").model_validate(patient)
    assert (patient["gender"], patient["birthDate"]) == ("female", "1990-01-02")
    assert "name" not in patient  # masked or missing name: no empty element


def test_capability_statement_and_outcome_validate() -> None:
    cap = capability_statement("https://example.org/fhir/r4")
    get_fhir_model_class("CapabilityStatement").model_validate(cap)
    assert [r["type"] for r in cap["rest"][0]["resource"]] == list(KINDS)
    body = outcome(LakehouseError(ErrorCode.FHIR_NOT_FOUND, name="Patient"))
    assert body.status_code == 404


def test_tagged_ids_pick_their_kind_and_category_selects_kinds() -> None:
    from serving.fhir.resources import VARIANTS
    from serving.fhir.search import id_where

    lab, vital = VARIANTS["Observation"]
    assert (lab.category, vital.category) == ("laboratory", "vital-signs")
    assert id_where(lab, "H1-his-vs-VS1") is None
    where = id_where(vital, "H1-his-vs-VS1")
    assert where is not None
    assert "'VS1'" in where.sql(dialect="spark")
    assert id_where(vital, "H1-his-xx-VS1") is None
    params = [
        ("category", "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs")
    ]
    assert parse(lab, params, ZONE).none
    assert not parse(vital, params, ZONE).none
    with pytest.raises(LakehouseError) as exc:
        parse(KINDS["Procedure"], [("category", "x")], ZONE)
    assert exc.value.code is ErrorCode.FHIR_SEARCH_INVALID
    with pytest.raises(LakehouseError):  # Organization is not a patient's resource
        parse(KINDS["Organization"], [("patient", "H1-P1")], ZONE)


def test_export_parameters_are_validated() -> None:
    from serving.fhir.export import _since, _types

    assert _types("Patient,Observation,Patient", "system") == ("Patient", "Observation")
    assert "Organization" in _types(None, "system")
    assert "Organization" not in _types(None, "patient")
    assert _since("2026-01-02T03:04:05+08:00") == datetime.fromisoformat(
        "2026-01-02T03:04:05+08:00"
    )
    for call in (lambda: _types("Specimen", "system"), lambda: _since("2026-01-02")):
        with pytest.raises(LakehouseError) as exc:
            call()
        assert exc.value.code is ErrorCode.FHIR_EXPORT_INVALID
