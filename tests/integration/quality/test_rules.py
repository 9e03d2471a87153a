"""The shipped rules over small bronze/silver tables shaped like the synthetic hospital's
records: every injected defect class is caught by at least one rule, and the clean records
raise no failure. (End to end over a generated hospital: test_rules_synthetic.py, slow.)"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

import pytest
from pyspark.sql import SparkSession

from lakehouse.quality import load_rules, run_rules, table_keys, trend
from lakehouse.quality.report import QualityReport
from lakehouse.settings import Settings
from lakehouse.synthetic.dirt import DefectCode
from lakehouse.tables.bronze.his import HIS_DIAGNOSES, HIS_PATIENTS
from lakehouse.tables.bronze.lis import LIS_HL7V2_MESSAGES
from lakehouse.tables.bronze.pacs import PACS_DICOM_INSTANCES
from lakehouse.tables.bronze.quarantine import QUARANTINE
from lakehouse.tables.ops.ingest import LANDING_FILES
from lakehouse.tables.silver.clinical import DIAGNOSIS, LAB_RESULT, MEDICATION_ORDER
from lakehouse.tables.silver.encounter import ENCOUNTER
from lakehouse.tables.silver.patient import PATIENT
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.vocab.concepts import CONCEPT
from tests.integration.quality.omop_rows import outputs

SPECS = [
    HIS_DIAGNOSES,
    HIS_PATIENTS,
    LIS_HL7V2_MESSAGES,
    PACS_DICOM_INSTANCES,
    QUARANTINE,
    LANDING_FILES,
    DIAGNOSIS,
    LAB_RESULT,
    MEDICATION_ORDER,
    ENCOUNTER,
    PATIENT,
    CONCEPT,
]
T0 = datetime(2025, 1, 1, 9, 0)
D = date(2025, 1, 1)


def _defaults(spec: TableSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in spec.columns:
        if f.name == "is_deleted":
            out[f.name] = False
        elif f.name == "op":
            out[f.name] = "U"
        elif not f.nullable:
            out[f.name] = 0 if "index" in f.name else f"{f.name}-x"
    return out


def _patient(inst: str, src: str, pid: str, **kw: Any) -> dict[str, Any]:
    return {
        "institution_code": inst,
        "source_system": src,
        "patient_id": pid,
        "patient_key": f"{inst}|{pid}",
        "birth_date": date(1960, 5, 1),
        "sex_code": "1",
        "id_card_no": f"ID{pid}",
        **kw,
    }


def _enc(
    inst: str, src: str, eid: str, pid: str, cls: str = "outpatient", **kw: Any
) -> dict[str, Any]:
    start, end = kw.pop("start", T0), kw.pop("end", datetime(2025, 1, 5, 10, 0))
    inpatient = cls == "inpatient"
    return {
        "institution_code": inst,
        "source_system": src,
        "encounter_id": eid,
        "patient_id": pid,
        "patient_key": f"{inst}|{pid}",
        "encounter_class": cls,
        "status": "finished",
        "start_at": start,
        "end_at": end,
        "admit_at": start if inpatient else None,
        "discharge_at": end if inpatient else None,
        **kw,
    }


def _dx(inst: str, src: str, did: str, eid: str, primary: bool | None, **kw: Any) -> dict[str, Any]:
    return {
        "institution_code": inst,
        "source_system": src,
        "diagnosis_id": did,
        "encounter_id": eid,
        "source_code": "E11.900",
        "source_vocabulary": "ICD10",
        "source_concept_id": 1001,
        "is_primary": primary,
        "diagnosed_at": T0,
        **kw,
    }


def _lab(rid: str, eid: str, **kw: Any) -> dict[str, Any]:
    return {
        "institution_code": "H0001",
        "source_system": "lis",
        "result_id": rid,
        "encounter_id": eid,
        "test_source_code": "2345-7",
        "test_source_vocabulary": "LOINC",
        "test_source_concept_id": 2001,
        "test_standard_code": "2345-7",
        "value_as_number": 5.5,
        "unit_source": "mmol/L",
        "value_std": 5.5,
        "unit_std": "mmol/L",
        "reference_low": 3.9,
        "reference_high": 6.1,
        "result_status": "F",
        "collected_at": T0,
        "reported_at": datetime(2025, 1, 1, 11),
        **kw,
    }


def _file(path: str, source: str, status: str = "landed") -> dict[str, Any]:
    return {
        "file_path": path,
        "file_sha256": f"sha-{path}",
        "source_system": source,
        "institution_code": "H0001",
        "status": status,
    }


def _quarantined(path: str, code: str) -> dict[str, Any]:
    return {
        "file_sha256": f"sha-{path}",
        "file_path": path,
        "record_index": 0,
        "source_system": "lis",
        "institution_code": "H0001",
        "error_code": code,
    }


def _hl7(ctrl: str, pid3: str) -> dict[str, Any]:
    msg = "\r".join(
        [
            f"MSH|^~\\&|LIS|H0001|EMR|H0001|20250101090000||ORU^R01^ORU_R01|{ctrl}|P|2.5",
            f"PID|1||{pid3}||张^三||19600501|M",
            "PV1|1|I|ICU^01^^H0001",
        ]
    )
    return {
        "file_sha256": f"sha-{ctrl}",
        "record_index": 0,
        "source_system": "lis",
        "institution_code": "H0001",
        "file_path": "f",
        "raw_message": msg,
        "message_code": "ORU",
        "control_id": ctrl,
    }


def clean() -> dict[str, list[dict[str, Any]]]:
    return {
        "ops.landing_files": [_file("lis/a.hl7", "lis"), _file("emr/b.xml", "emr")],
        "bronze.quarantine": [],
        "bronze.lis_hl7v2_messages": [_hl7("C1", "P1^^^H0001^MR~110101196005010011^^^CHN^NNCHN")],
        "bronze.his_patients": [
            {
                "institution_code": "H0001",
                "patient_id": "P1",
                "row_sha256": "r1",
                "id_card": "110101196005010011",
            },
            {
                "institution_code": "H0001",
                "patient_id": "P2",
                "row_sha256": "r2",
                "passport": "E12345678",
            },
        ],
        "bronze.his_diagnoses": [
            {
                "institution_code": "H0001",
                "diag_id": "D1",
                "row_sha256": "r3",
                "created_at": T0,
                "updated_at": T0,
            },
        ],
        "bronze.pacs_dicom_instances": [
            {"file_sha256": "p1", "record_index": 0, "patient_id": "P1"}
        ],
        "silver.patient": [
            _patient("H0001", "his", "P1"),
            _patient("H0001", "his", "P2", id_card_no=None),
            _patient("A0001", "fhir", "F1"),
            _patient("A0002", "csv", "C1"),
        ],
        "silver.encounter": [
            _enc("H0001", "his", "V1", "P1", "inpatient"),
            _enc("H0001", "lis", "V1", "P1", "inpatient"),
            _enc("H0001", "his", "V2", "P2"),
            _enc("A0001", "fhir", "enc-1", "F1", "inpatient"),
        ],
        "silver.diagnosis": [
            _dx("H0001", "his", "D1", "V1", True),
            _dx("H0001", "his", "D2", "V1", False),
            _dx("A0001", "fhir", "c1", "enc-1", None),
        ],
        "silver.lab_result": [_lab("R1", "V1")],
        "silver.medication_order": [
            {
                "institution_code": "H0001",
                "source_system": "his",
                "medication_order_id": "M1",
                "encounter_id": "V1",
            },
        ],
        "vocab.concept": [
            {
                "concept_id": 1001,
                "edition": "e1",
                "concept_code": "E11.900",
                "vocabulary_id": "ICD10",
                "valid_start_date": date(2020, 1, 1),
                "valid_end_date": date(2099, 12, 31),
            },
            {
                "concept_id": 2001,
                "edition": "e1",
                "concept_code": "2345-7",
                "vocabulary_id": "LOINC",
                "valid_start_date": date(2020, 1, 1),
                "valid_end_date": date(2099, 12, 31),
            },
        ],
    }


#: Defect class (truth/defects.parquet) -> the records that show it -> rules that must fail.
DEFECTS: dict[str, tuple[dict[str, list[dict[str, Any]]], set[str]]] = {
    DefectCode.DUPLICATE_FILE: (
        {"ops.landing_files": [_file("lis/a_resend1.hl7", "lis", "duplicate")]},
        {"BRZ-FILE-001"},
    ),
    DefectCode.TRUNCATED_FILE: (
        {
            "ops.landing_files": [_file("emr/t.xml", "emr")],
            "bronze.quarantine": [_quarantined("emr/t.xml", "LH-ING-012")],
        },
        {"BRZ-FILE-002"},
    ),
    DefectCode.WRONG_ENCODING: (
        {
            "ops.landing_files": [_file("lis/w.hl7", "lis")],
            "bronze.quarantine": [_quarantined("lis/w.hl7", "LH-ING-010")],
        },
        {"BRZ-FILE-003"},
    ),
    DefectCode.MALFORMED_MESSAGE: (
        {
            "ops.landing_files": [_file("lis/m.hl7", "lis")],
            "bronze.quarantine": [_quarantined("lis/m.hl7", "LH-ING-005")],
        },
        {"BRZ-FILE-004"},
    ),
    DefectCode.MISSING_FIELD: (
        {
            "bronze.lis_hl7v2_messages": [_hl7("C2", "")],
            "bronze.his_patients": [
                {"institution_code": "H0001", "patient_id": "P3", "row_sha256": "r9"}
            ],
            "bronze.pacs_dicom_instances": [
                {"file_sha256": "p2", "record_index": 0, "patient_id": ""}
            ],
            "silver.patient": [
                _patient("A0001", "fhir", "F2", birth_date=None),
                _patient("A0002", "csv", "C2", sex_code=None),
            ],
        },
        {"BRZ-LIS-001", "BRZ-HIS-001", "BRZ-PACS-001", "SLV-PAT-003", "SLV-PAT-004"},
    ),
    DefectCode.UNIT_VARIANT: (
        {
            "silver.lab_result": [
                _lab(
                    "R2",
                    "V1",
                    value_as_number=99.0,
                    unit_source="mg/dL",
                    reference_low=70.2,
                    reference_high=109.8,
                )
            ]
        },
        {"SLV-LAB-004"},
    ),
    DefectCode.OUT_OF_RANGE: (
        {"silver.lab_result": [_lab("R3", "V1", value_as_number=550.0, value_std=550.0)]},
        {"SLV-LAB-002", "SLV-LAB-003"},
    ),
    DefectCode.LATE_CORRECTION: (
        {
            "silver.lab_result": [_lab("R4", "V1", result_status="C")],
            "bronze.his_diagnoses": [
                {
                    "institution_code": "H0001",
                    "diag_id": "D9",
                    "row_sha256": "r8",
                    "created_at": T0,
                    "updated_at": datetime(2025, 1, 9),
                }
            ],
        },
        {"SLV-LAB-005", "BRZ-HIS-002"},
    ),
    # WS/T 500 and integrity rules, over records no synthetic dirt produces
    "NO_PRIMARY_DIAGNOSIS": (
        {
            "silver.encounter": [_enc("H0001", "his", "V3", "P1", "inpatient")],
            "silver.diagnosis": [_dx("H0001", "his", "D3", "V3", False)],
        },
        {"SLV-ENC-001"},
    ),
    "DISCHARGE_BEFORE_ADMISSION": (
        {
            "silver.encounter": [
                _enc("H0001", "his", "V4", "P1", "inpatient", end=datetime(2024, 12, 30))
            ],
            "silver.diagnosis": [_dx("H0001", "his", "D4", "V4", True)],
        },
        {"SLV-ENC-002"},
    ),
    "INVALID_PRIMARY_CODE": (
        {
            "silver.encounter": [_enc("H0001", "his", "V5", "P1", "inpatient")],
            "silver.diagnosis": [_dx("H0001", "his", "D5", "V5", True, source_concept_id=9999)],
        },
        {"SLV-DX-001", "SLV-DX-002"},
    ),
    "ORPHAN_LAB": ({"silver.lab_result": [_lab("R5", "NOPE")]}, {"SLV-REF-003"}),
}


def _views(spark: SparkSession, rows: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    u = uuid.uuid4().hex[:8]
    names = {}
    for spec in SPECS:
        base = _defaults(spec)
        data = [tuple({**base, **r}.get(c) for c in spec.column_names) for r in rows[spec.name]]
        view = f"q{u}_{spec.name.replace('.', '_')}"
        spark.createDataFrame(data, spec.schema).createOrReplaceTempView(view)
        names[spec.name] = view
    return names


def _dirty() -> dict[str, list[dict[str, Any]]]:
    rows = clean()
    for extra, _ in DEFECTS.values():
        for table, more in extra.items():
            rows[table] = rows[table] + more
    return rows


def _key(table: str, row: dict[str, Any]) -> str:
    cols = table_keys()[table]
    return json.dumps({c: str(row[c]) for c in cols}, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture(scope="module")
def dirty_report(spark: SparkSession, settings: Settings) -> QualityReport:
    """One run over the clean records plus every defect's records."""
    names = _views(spark, _dirty())
    return run_rules(spark, settings, rules=load_rules(), table_names=names, write=False)


def test_clean_records_raise_no_failure(dirty_report: QualityReport) -> None:
    assert not dirty_report.errors, [(r.rule.id, r.message) for r in dirty_report.errors]
    clean_keys = {_key(table, {**_defaults(spec), **row})
                  for spec in SPECS for table in [spec.name] for row in clean()[table]}  # fmt: skip
    for r in dirty_report.failed:
        assert r.samples, r.rule.id
        assert not set(r.samples) & clean_keys, (r.rule.id, r.samples)
    applicable = [r for r in dirty_report.results if r.status in ("pass", "fail")]
    assert len(applicable) == len(dirty_report.results)


def test_every_defect_class_of_the_synthetic_hospital_has_a_case() -> None:
    assert {c.value for c in DefectCode} <= set(DEFECTS)


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_class_is_caught(dirty_report: QualityReport, defect: str) -> None:
    _, rules = DEFECTS[defect]
    failed = {r.rule.id for r in dirty_report.failed}
    assert rules <= failed, rules - failed


def test_failures_are_counted_exactly_and_sampled_by_key(dirty_report: QualityReport) -> None:
    assert not dirty_report.errors, [(r.rule.id, r.message) for r in dirty_report.errors]
    lab = dirty_report.result("SLV-LAB-005")
    assert (lab.rows_checked, lab.rows_failing) == (5, 1)
    assert lab.samples == ['{"institution_code":"H0001","source_system":"lis","result_id":"R4"}']
    assert lab.percent_failing == pytest.approx(20.0)
    # only the rules of a defect fail: nothing else is dragged along
    expected = set().union(*(rules for _, rules in DEFECTS.values()))
    assert {r.rule.id for r in dirty_report.failed} == expected


def test_results_and_trend_are_recorded(
    spark: SparkSession, settings: Settings, unique: str
) -> None:
    out = outputs(unique)
    names = _views(spark, clean())
    rules = [r for r in load_rules() if r.table == "silver.lab_result"]
    first = run_rules(spark, settings, rules=rules, table_names=names, outputs=out)
    assert first.counts()["fail"] == 0
    names = _views(spark, _dirty())
    second = run_rules(spark, settings, rules=rules, table_names=names, outputs=out)
    stored = spark.table(out.results.name)
    assert stored.count() == len(first.results) + len(second.results)
    points = trend(spark, rule_id="SLV-LAB-005", results=out.results).collect()
    assert [p["run_id"] for p in points] == [first.run_id, second.run_id]
    assert points[0]["percent_failing"] == 0.0
    assert points[1]["delta_percent"] == pytest.approx(20.0)
    keys = spark.table(out.failures.name).where("rule_id = 'SLV-LAB-005'").collect()
    assert [k["row_key"] for k in keys] == [
        '{"institution_code":"H0001","source_system":"lis","result_id":"R4"}'
    ]
