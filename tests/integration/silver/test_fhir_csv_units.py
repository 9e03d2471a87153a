"""Hand-written FHIR resources and CSV rows through the member-site silver transforms.

One bronze DataFrame per format, one transform each, collected once (module fixtures): the
machine is shared, and every assertion reads the same small result.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import DataFrame, Row
from pyspark.sql.types import (
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lakehouse.errors import ErrorCode
from lakehouse.silver.csv_member import ExportConfig, default_config, transform_csv
from lakehouse.silver.fhir import transform_fhir
from lakehouse.tables.silver.clinical import (
    DIAGNOSIS,
    LAB_RESULT,
    MEDICATION_ORDER,
    PROCEDURE,
    VITAL_SIGN,
)
from lakehouse.tables.silver.documents import NOTE
from lakehouse.tables.silver.encounter import ENCOUNTER
from lakehouse.tables.silver.organization import ORG, PROVIDER
from lakehouse.tables.silver.patient import PATIENT

SPECS = {
    s.name: s
    for s in (
        PATIENT,
        ENCOUNTER,
        DIAGNOSIS,
        LAB_RESULT,
        VITAL_SIGN,
        MEDICATION_ORDER,
        PROCEDURE,
        ORG,
        PROVIDER,
        NOTE,
    )
}
INGESTED = datetime(2026, 1, 2, 3, 4, 5)
LINEAGE = [
    StructField("file_sha256", StringType()),
    StructField("record_index", LongType()),
    StructField("source_system", StringType()),
    StructField("institution_code", StringType()),
    StructField("file_path", StringType()),
    StructField("ingested_at", TimestampType()),
]
FHIR_SCHEMA = StructType(
    [
        *LINEAGE,
        StructField("resource_type", StringType()),
        StructField("resource_id", StringType()),
        StructField("raw_json", StringType()),
    ]
)
CSV_SCHEMA = StructType([*LINEAGE, StructField("values", MapType(StringType(), StringType()))])

LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
SUBJ = {"reference": "Patient/p1"}


def at(iso: str, tz: str | None = None) -> datetime:
    """An instant as PySpark collects a TIMESTAMP: naive, in this process's time zone."""
    value = datetime.fromisoformat(iso)
    if tz is not None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone().replace(tzinfo=None)


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _obs(oid: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory"
                    )
                ]
            }
        ],
        "code": {
            "coding": [_coding(LOINC, "2345-7", "Glucose"), _coding("urn:x", "GLU", "葡萄糖")]
        },
        "subject": SUBJ,
        "effectiveDateTime": "2025-07-03T11:22:00+08:00",
    }
    base.update(extra)
    return base


RESOURCES: list[dict[str, Any] | str] = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"lastUpdated": "2025-01-01T08:00:00+08:00"},
        "identifier": [
            {"system": "urn:oid:1.2.3", "value": "MRN1"},
            {"system": "urn:oid:1.2.3", "value": "MRN1-dup"},
            {"system": "urn:oid:2.16.156.10011.1.3", "value": "11010519491231002X"},
            {"type": {"coding": [{"code": "PPN"}]}, "value": "E1234567"},
        ],
        "name": [{"family": "张", "given": ["伟"]}],
        "gender": "male",
        "birthDate": "1949-12-31",
        "telecom": [
            {"system": "email", "value": "x@y"},
            {"system": "phone", "value": "+86 138-0000-0000"},
        ],
        "address": [
            {"state": "广东省", "city": "深圳市", "district": "南山区", "postalCode": "518000"}
        ],
    },
    {"resourceType": "Patient", "id": "p2", "name": [{"family": "Smith", "given": ["Ann", "B"]}]},
    # urn:uuid references (transaction bundles) and conditional references (bulk exports)
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": _coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP"),
        "subject": {"reference": "urn:uuid:p1"},
        "period": {"start": "2025-07-01T08:00:00+08:00", "end": "2025-07-05T10:00:00+08:00"},
        "participant": [
            {
                "type": [{"coding": [{"code": "ATND"}]}],
                "individual": {
                    "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999",
                    "display": "Dr. A",
                },
            }
        ],
        "location": [{"location": {"reference": "Location/ward-3", "display": "心内科"}}],
    },
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "https://fhir.example.org/r4/Patient/p1/_history/2"},
        "encounter": {"reference": "urn:uuid:e1"},
        "code": {
            "coding": [
                _coding("http://snomed.info/sct", "38341003", "Hypertension"),
                _coding("http://hl7.org/fhir/sid/icd-10-cm", "I10", "Essential hypertension"),
            ]
        },
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "onsetDateTime": "2020-05-01",
    },
    {
        "resourceType": "Condition",
        "id": "c2",
        "subject": {"reference": "Patient?identifier=urn:oid:1.2.3|MRN1"},
        "code": {"coding": [_coding("urn:site:dx", "ZD-01", "高血压")]},
        "verificationStatus": {"coding": [{"code": "entered-in-error"}]},
    },
    {"resourceType": "Condition", "id": "c-nosubj", "code": {"text": "x"}},
    {"resourceType": "Condition", "id": "c-group", "subject": {"reference": "Group/g1"}},
    {"resourceType": "Condition", "subject": SUBJ},
    # Observation values: Quantity, comparator, string (numeric and not), corrected, vitals
    _obs(
        "o-qty",
        valueQuantity={"value": 6.1, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
        referenceRange=[{"low": {"value": 3.9}, "high": {"value": 6.1}}],
        interpretation=[{"coding": [{"code": "H"}]}],
        issued="2025-07-03T12:00:00+08:00",
        note=[{"text": "haemolysed"}],
    ),
    _obs("o-lt", valueQuantity={"value": 0.5, "comparator": "<", "unit": "mg/L"}),
    _obs("o-str", valueString="阴性", status="corrected"),
    _obs("o-strnum", valueString="5.6", status="amended"),
    _obs("o-cc", valueCodeableConcept={"text": "positive"}, status="entered-in-error"),
    {
        "resourceType": "Observation",
        "id": "o-nocat",
        "status": "final",
        "code": {"coding": [_coding(LOINC, "718-7")]},
        "subject": SUBJ,
        "valueQuantity": {"value": 135, "unit": "g/L"},
    },
    {
        "resourceType": "Observation",
        "id": "o-survey",
        "status": "final",
        "category": [{"coding": [{"code": "survey"}]}],
        "code": {"coding": [_coding(LOINC, "72166-2")]},
        "subject": SUBJ,
    },
    _obs("o-nocode", code={"text": "mystery"}),
    {
        "resourceType": "Observation",
        "id": "o-bp",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [_coding(LOINC, "85354-9", "Blood pressure panel")]},
        "subject": SUBJ,
        "effectiveDateTime": "2025-07-03T09:00:00+08:00",
        "component": [
            {
                "code": {"coding": [_coding(LOINC, "8480-6")]},
                "valueQuantity": {"value": 140, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [_coding(LOINC, "8462-4")]},
                "valueQuantity": {"value": 90, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            },
        ],
    },
    {
        "resourceType": "Observation",
        "id": "o-hr",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [_coding(LOINC, "8867-4")]},
        "subject": SUBJ,
        "valueQuantity": {"value": 72, "unit": "/min", "system": UCUM, "code": "/min"},
    },
    {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "subject": SUBJ,
        "authoredOn": "2025-07-03",
        "medicationCodeableConcept": {
            "coding": [
                _coding("http://www.nlm.nih.gov/research/umls/rxnorm", "314076", "lisinopril")
            ]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"code": "26643006", "display": "Oral"}]},
                "doseAndRate": [{"doseQuantity": {"value": 10, "unit": "mg", "code": "mg"}}],
            }
        ],
        "dispenseRequest": {"expectedSupplyDuration": {"value": 2, "unit": "wk", "code": "wk"}},
    },
    {
        "resourceType": "MedicationRequest",
        "id": "m2",
        "status": "completed",
        "subject": SUBJ,
        "medicationReference": {"reference": "Medication/x", "display": "Some drug"},
    },
    {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "completed",
        "subject": SUBJ,
        "code": {"coding": [_coding("http://snomed.info/sct", "430193006", "Med rec")]},
        "performedPeriod": {"start": "2022-06-22T12:31:08-04:00"},
        "performer": [{"actor": {"reference": "Practitioner/dr1"}}],
    },
    {
        "resourceType": "Organization",
        "id": "org1",
        "name": "Hospital",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.156.10011.1.9.2"}],
        "type": [{"coding": [{"code": "prov", "display": "Healthcare Provider"}]}],
    },
    {
        "resourceType": "Practitioner",
        "id": "dr1",
        "name": [{"family": "Emard", "given": ["Irvin"], "prefix": ["Dr."]}],
    },
    {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "subject": SUBJ,
        "type": {"coding": [_coding(LOINC, "11506-3", "Progress note")]},
        "date": "2025-07-03T10:00:00+08:00",
        "author": [{"display": "Dr. B"}],
        "content": [
            {"attachment": {"contentType": "application/pdf", "data": "JVBERi0="}},
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode("病程记录\n患者无不适。".encode()).decode(),
                }
            },
        ],
    },
    {
        "resourceType": "DocumentReference",
        "id": "d-pdf",
        "subject": SUBJ,
        "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0="}}],
    },
    {
        "resourceType": "DocumentReference",
        "id": "d-latin1",
        "subject": SUBJ,
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(b"caf\xe9").decode(),
                }
            }
        ],
    },
    {"resourceType": "AllergyIntolerance", "id": "a1", "patient": SUBJ},
    # the R4 shape broken: subject as a string, not a Reference
    '{"resourceType":"Procedure","id":"pr-bad","subject":"Patient/p1","code":{"text":"x"}}',
]


def _fhir_bronze(spark: Any) -> DataFrame:
    rows = []
    for i, res in enumerate(RESOURCES):
        text = res if isinstance(res, str) else json.dumps(res, ensure_ascii=False)
        parsed = json.loads(text)
        rows.append(
            (
                "sha-fhir",
                i,
                "fhir",
                "A0001",
                "file:/landing/fhir/A0001/hand.ndjson",
                INGESTED,
                parsed["resourceType"],
                parsed.get("id"),
                text,
            )
        )
    return spark.createDataFrame(rows, FHIR_SCHEMA)


def _collect(out: Any) -> tuple[dict[str, dict[str, Row]], list[Row]]:
    tables = {}
    for name, df in out.rows.items():
        assert set(df.columns) <= set(SPECS[name].column_names), name
        key = SPECS[name].keys[-1]
        tables[name] = {r[key]: r for r in df.collect()}
    rejects = out.rejects.collect() if out.rejects is not None else []
    return tables, rejects


@pytest.fixture(scope="module")
def fhir(spark: Any) -> tuple[dict[str, dict[str, Row]], list[Row]]:
    return _collect(transform_fhir(_fhir_bronze(spark)))


def test_patient_identifiers_name_phone_address(fhir: Any) -> None:
    p = fhir[0]["silver.patient"]["p1"]
    assert p.patient_key == "A0001|p1"
    assert p.source_record_id == "p1"
    assert p.identifiers == {
        "urn:oid:1.2.3": "MRN1",
        "urn:oid:2.16.156.10011.1.3": "11010519491231002X",
        "PPN": "E1234567",
    }
    assert (p.id_card_no, p.id_card_valid, p.passport_no) == (
        "11010519491231002X",
        "valid",
        "E1234567",
    )
    assert (p.name, p.sex_code, p.sex_source) == ("张伟", "1", "male")
    assert str(p.birth_date) == "1949-12-31"
    assert p.phone == "13800000000"
    assert (p.address, p.address_province, p.address_county, p.postcode) == (
        "广东省深圳市南山区",
        "广东省",
        "南山区",
        "518000",
    )
    assert p.source_updated_at == at("2025-01-01T08:00:00+08:00")  # meta.lastUpdated
    p2 = fhir[0]["silver.patient"]["p2"]
    assert (p2.name, p2.sex_code, p2.id_card_valid) == ("Ann B Smith", None, "missing")
    assert p2.source_updated_at == INGESTED  # no meta.lastUpdated: when bronze landed it


def test_references_literal_urn_uuid_absolute_and_conditional(fhir: Any) -> None:
    e = fhir[0]["silver.encounter"]["e1"]
    assert (e.patient_id, e.encounter_class, e.encounter_class_source) == ("p1", "inpatient", "IMP")
    assert (e.attending_provider_id, e.attending_provider_name) == ("999", "Dr. A")
    assert (e.dept_code, e.dept_name) == ("ward-3", "心内科")
    assert e.admit_at == e.start_at == at("2025-07-01T08:00:00+08:00")
    assert e.discharge_at == e.end_at
    c1 = fhir[0]["silver.diagnosis"]["c1"]
    assert (c1.patient_id, c1.encounter_id) == ("p1", "e1")
    assert fhir[0]["silver.diagnosis"]["c2"].patient_id == "MRN1"


def test_condition_coding_preference_and_local_fallback(fhir: Any) -> None:
    c1, c2 = fhir[0]["silver.diagnosis"]["c1"], fhir[0]["silver.diagnosis"]["c2"]
    assert (c1.source_code, c1.source_vocabulary, c1.source_name) == (
        "I10",
        "ICD10CM",
        "Essential hypertension",
    )
    assert (c1.clinical_status, c1.diagnosed_at_source) == ("active", "2020-05-01")
    assert (c2.source_code, c2.source_vocabulary, c2.is_deleted) == (
        "ZD-01",
        "LOCAL:A0001:DX",
        True,
    )


def test_observation_values_status_and_local_code(fhir: Any) -> None:
    labs = fhir[0]["silver.lab_result"]
    q = labs["o-qty"]
    assert (q.test_source_code, q.test_source_vocabulary, q.test_local_code, q.test_local_name) == (
        "2345-7",
        "LOINC",
        "GLU",
        "葡萄糖",
    )
    assert (q.value_type, q.value_source, q.value_as_number, q.unit_source) == (
        "Quantity",
        "6.1",
        6.1,
        "mmol/L",
    )
    assert (q.reference_range_source, q.reference_low, q.reference_high) == ("3.9-6.1", 3.9, 6.1)
    assert (q.abnormal_flag, q.result_status, q.comment) == ("H", "F", "haemolysed")
    assert q.collected_at == at("2025-07-03T11:22:00+08:00")
    assert q.reported_at is not None
    lt = labs["o-lt"]
    assert (lt.value_source, lt.value_as_number, lt.unit_source) == ("<0.5", None, "mg/L")
    s = labs["o-str"]
    assert (s.value_type, s.value_source, s.value_as_number, s.result_status) == (
        "string",
        "阴性",
        None,
        "C",
    )
    assert (labs["o-strnum"].value_as_number, labs["o-strnum"].result_status) == (5.6, "C")
    cc = labs["o-cc"]
    assert (cc.value_type, cc.value_source, cc.is_deleted) == ("CodeableConcept", "positive", True)
    assert labs["o-nocat"].test_source_code == "718-7"  # no category, LOINC code: a lab
    assert "o-survey" not in labs
    assert "o-nocode" not in labs


def test_vital_signs_one_row_per_component(fhir: Any) -> None:
    vitals = fhir[0]["silver.vital_sign"]
    assert set(vitals) == {"o-bp|8480-6", "o-bp|8462-4", "o-hr"}
    sbp = vitals["o-bp|8480-6"]
    assert (sbp.source_code, sbp.value_as_number, sbp.unit_source, sbp.unit_std) == (
        "8480-6",
        140.0,
        "mmHg",
        "mm[Hg]",
    )
    assert vitals["o-hr"].value_as_number == 72.0


def test_medication_request_rxnorm_timing_supply(fhir: Any) -> None:
    m1 = fhir[0]["silver.medication_order"]["m1"]
    assert (m1.drug_source_code, m1.drug_source_vocabulary, m1.drug_source_name) == (
        "314076",
        "RXNORM",
        "lisinopril",
    )
    assert (m1.dose, m1.dose_unit, m1.route, m1.frequency, m1.days_supply) == (
        10.0,
        "mg",
        "Oral",
        "2/1d",
        14,
    )
    m2 = fhir[0]["silver.medication_order"]["m2"]
    assert (m2.drug_source_code, m2.drug_source_name) == (None, "Some drug")


def test_procedure_org_provider_note(fhir: Any) -> None:
    pr = fhir[0]["silver.procedure"]["pr1"]
    assert (pr.source_code, pr.source_vocabulary, pr.provider_id) == ("430193006", "SNOMED", "dr1")
    assert pr.performed_at_source == "2022-06-22T12:31:08-04:00"
    assert pr.performed_at is not None
    org = fhir[0]["silver.org"]["org1"]
    assert (org.org_name, org.org_oid, org.org_kind) == (
        "Hospital",
        "2.16.156.10011.1.9.2",
        "Healthcare Provider",
    )
    assert fhir[0]["silver.provider"]["dr1"].provider_name == "Irvin Emard"
    note = fhir[0]["silver.note"]["d1"]
    assert note.note_text == "病程记录\n患者无不适。"
    assert note.char_count == 11
    # bytes that are not UTF-8 do not fail the run: they become U+FFFD
    assert fhir[0]["silver.note"]["d-latin1"].note_text == "caf\ufffd"
    assert (note.note_type, note.note_title, note.language, note.author_name) == (
        "Progress note",
        "病程记录",
        "zh",
        "Dr. B",
    )


def test_rejects_are_catalogued_and_carry_no_patient_values(fhir: Any) -> None:
    rejects = {(r.bronze_record_index, r.error_code) for r in fhir[1]}
    by_id = {}
    for i, r in enumerate(RESOURCES):
        rid = json.loads(r)["id"] if isinstance(r, str) else r.get("id")
        by_id[rid] = i
    assert rejects == {
        (by_id["c-nosubj"], ErrorCode.SILVER_FHIR_NO_PATIENT.id),
        (by_id["c-group"], ErrorCode.SILVER_FHIR_NO_PATIENT.id),
        (by_id[None], ErrorCode.SILVER_FHIR_NO_ID.id),
        (by_id["o-nocode"], ErrorCode.SILVER_FHIR_MISSING_ELEMENT.id),
        (by_id["d-pdf"], ErrorCode.SILVER_FHIR_NO_TEXT.id),
        # a subject that is not a Reference object reads as no Patient reference
        (by_id["pr-bad"], ErrorCode.SILVER_FHIR_NO_PATIENT.id),
    }
    details = {r.detail for r in fhir[1]}
    assert "FHIR Condition resource 5 of hand.ndjson names no patient: no subject." in details
    assert (
        f"FHIR Procedure resource {by_id['pr-bad']} of hand.ndjson names no patient: subject "
        "is not a Patient reference." in details
    )
    assert all("p1" not in d and "/landing/" not in d for d in details)
    # unmapped types are neither rows nor rejects
    assert by_id["a1"] not in {i for i, _ in rejects}


# --- member CSV exports ---------------------------------------------------------------
CSV_ROWS: list[tuple[str, dict[str, str]]] = [
    (
        "visits_1.csv",
        {
            "就诊号": "V1",
            "病人ID": "C1",
            "就诊类别": "住院",
            "科室名称": "心内科",
            "入院时间": "2024/8/3 9:05",
            "出院时间": "2024/08/10 10:00",
        },
    ),
    ("visits_1.csv", {"就诊号": "", "病人ID": "C1"}),
    (
        "patients_1.csv",
        {
            "病人ID": "C1",
            "患者姓名": "李雷",
            "性别": "男",
            "出生日期": "1980/01/02",
            "身份证号": "",
            "手机号": "+86 139 0000 0000",
        },
    ),
    (
        "labs_1.csv",
        {
            "检验流水号": "L1",
            "就诊号": "V1",
            "项目代码": "JY1001",
            "检验项目": "葡萄糖",
            "检验结果": "7.8",
            "单位": "mmol/L",
            "参考值": "3.9-6.1",
            "结果标志": "↑",
            "采样时间": "2024/08/04 07:30",
        },
    ),
    (
        "labs_1.csv",
        {
            "检验流水号": "L2",
            "就诊号": "V9",
            "项目代码": "JY1009",
            "检验结果": "阴性",
            "结果标志": "",
        },
    ),
    (
        "diagnoses_1.csv",
        {
            "诊断流水号": "D1",
            "就诊流水号": "V1",
            "诊断编码": "ZD-0101",
            "诊断名称": "高血压",
            "主要诊断": "否",
        },
    ),
    (
        "medications_1.csv",
        {
            "处方流水号": "M1",
            "就诊流水号": "V1",
            "药品编码": "YP0102",
            "药品名称": "氨氯地平",
            "单次剂量": "5",
            "剂量单位": "mg",
            "给药途径": "口服",
            "频次": "qd",
            "天数": "30",
        },
    ),
    ("medications_1.csv", {"处方流水号": "M2", "就诊流水号": "V1", "天数": "99999999999"}),
    ("charges_1.csv", {"收费流水号": "F1"}),
]


def _csv_bronze(spark: Any) -> DataFrame:
    rows = [
        ("sha-" + name, i, "csv", "A0002", f"file:/landing/csv/A0002/{name}", INGESTED, values)
        for i, (name, values) in enumerate(CSV_ROWS)
    ]
    return spark.createDataFrame(rows, CSV_SCHEMA)


@pytest.fixture(scope="module")
def csv(spark: Any) -> tuple[dict[str, dict[str, Row]], list[Row]]:
    return _collect(transform_csv(_csv_bronze(spark)))


def test_csv_header_synonyms_and_value_domains(csv: Any, settings: Any) -> None:
    tables = csv[0]
    v = tables["silver.encounter"]["V1"]
    assert (v.patient_id, v.encounter_class, v.encounter_class_source, v.dept_name) == (
        "C1",
        "inpatient",
        "住院",
        "心内科",
    )
    assert v.start_at == v.admit_at == at("2024-08-03T09:05:00", settings.timezone)
    assert v.status == "finished"
    p = tables["silver.patient"]["C1"]
    assert (p.name, p.sex_code, p.phone, p.id_card_no, p.id_card_valid) == (
        "李雷",
        "1",
        "13900000000",
        None,
        "missing",
    )
    assert p.identifiers == {"MR": "C1"}
    assert p.source_updated_at == INGESTED
    lab = tables["silver.lab_result"]["L1"]
    assert (lab.patient_id, lab.test_source_code, lab.test_source_vocabulary) == (
        "C1",
        "JY1001",
        "LOCAL:A0002:LAB",
    )
    assert (lab.value_as_number, lab.unit_source, lab.reference_low, lab.reference_high) == (
        7.8,
        "mmol/L",
        3.9,
        6.1,
    )
    assert (lab.abnormal_flag, lab.value_type, lab.result_status) == ("H", "NM", "F")
    other = tables["silver.lab_result"]["L2"]
    # the visit is not in the batch: no patient, but the row is kept
    assert (other.patient_id, other.value_type, other.abnormal_flag) == (None, "ST", None)
    d = tables["silver.diagnosis"]["D1"]
    assert (d.source_vocabulary, d.is_primary, d.diagnosis_type) == (
        "LOCAL:A0002:DX",
        False,
        "secondary",
    )
    m = tables["silver.medication_order"]["M1"]
    assert (m.drug_source_vocabulary, m.dose, m.frequency, m.days_supply) == (
        "LOCAL:A0002:DRUG",
        5.0,
        "qd",
        30,
    )
    # a day count no INT holds is null, not a failed run
    assert tables["silver.medication_order"]["M2"].days_supply is None


def test_csv_rejects(csv: Any) -> None:
    rejects = {(r.bronze_record_index, r.error_code): r.detail for r in csv[1]}
    assert rejects == {
        (1, ErrorCode.SILVER_CSV_MISSING_FIELD.id): (
            "CSV visits row 1 of visits_1.csv has no encounter_id, which its silver table needs."
        ),
        (8, ErrorCode.SILVER_CSV_UNKNOWN_EXPORT.id): (
            "CSV row 8 of charges_1.csv: the file name matches no configured member export table."
        ),
    }


def test_a_new_members_headers_are_configuration(spark: Any) -> None:
    cfg = default_config().model_copy(deep=True)
    cfg.tables["patients"].fields["patient_id"].append("PatientNo")
    cfg.tables["patients"].file_prefixes.append("demographics")
    assert isinstance(cfg, ExportConfig)
    bronze = spark.createDataFrame(
        [
            (
                "sha",
                0,
                "csv",
                "A0004",
                "file:/l/csv/A0004/Demographics-2024.csv",
                INGESTED,
                {"PatientNo": "Z9", "性别": "F"},
            )
        ],
        CSV_SCHEMA,
    )
    out = transform_csv(bronze, config=cfg)
    (row,) = out.rows["silver.patient"].collect()
    assert (row.patient_id, row.sex_code) == ("Z9", "2")
    assert out.rejects is not None
    assert out.rejects.count() == 0
