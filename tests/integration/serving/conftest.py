"""The assistant service over real HTTP: uvicorn in a thread of the test process, sharing
the test run's one Spark session, on small silver-shaped tables under unique names.

One seeded world serves every module of this package (``scope="package"``: the seeding is
most of the Spark time): tests may add versions (the assistant's correction of R2) but
must not rely on another module having run or not."""

from __future__ import annotations

import csv
import dataclasses
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pyspark.sql import SparkSession
from pyspark.sql.types import StringType

from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal, SessionSigner
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.governance.tls import client_context
from lakehouse.settings import SecuritySettings, ServeSettings, Settings
from lakehouse.tables.silver.clinical import (
    DIAGNOSIS,
    LAB_RESULT,
    MEDICATION_ORDER,
    PROCEDURE,
    VITAL_SIGN,
)
from lakehouse.tables.silver.documents import CLINICAL_DOCUMENT, NOTE
from lakehouse.tables.silver.encounter import ENCOUNTER, ENCOUNTER_TRANSFER
from lakehouse.tables.silver.imaging import IMAGING_SERIES, IMAGING_STUDY
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.silver.organization import DEPT, ORG, PROVIDER
from lakehouse.tables.silver.patient import PATIENT
from lakehouse.tables.silver.person_index import PERSON_FEATURES
from lakehouse.tables.spec import Phi, TableSpec, column
from lakehouse.tables.vocab.concepts import CONCEPT, CONCEPT_SYNONYM
from lakehouse.terminology import ATC, LOINC
from lakehouse.terminology.vocabularies import DATA
from serving.app import create_app, tls_files
from serving.assistant.lexicon import load_lexicon
from serving.fhir.resources import FhirTables
from serving.interop.services import InteropTables

KEY = b"k" * 32
PASSWORD = "Correct-Horse-42"
NOW = datetime.now().replace(microsecond=0)

POLICY = """
version: 1
patient_directory: {directory}
roles:
  clinician:
    read: [silver.*]
    phi: [name, identifier, contact, address, date, free_text, quasi]
    scope: [department, institution]
    break_glass: true
  nurse:
    read: [silver.*]
    phi: [identifier, date]
    scope: [institution]
  admin:
    read: [ops.*]
    deny: [audit.*]
  auditor:
    read: [audit.*]
"""


@dataclass(frozen=True)
class ServiceTables(InteropTables):
    """The service's tables and the EMPI's features, which the name search reads."""

    person_features: TableSpec = PERSON_FEATURES


@dataclass
class Service:
    url: str
    audit: MemoryAuditLog
    tables: InteropTables
    spark: SparkSession
    verify: ssl.SSLContext


def _rows(spec: TableSpec, *records: dict[str, Any]) -> list[tuple[Any, ...]]:
    base = {
        "source_system": "lis",
        "institution_code": "H1",
        "is_deleted": False,
        "bronze_table": "bronze.test",
    }
    return [tuple({**base, **r}.get(c) for c in spec.column_names) for r in records]


def _lab(
    rid: str, patient: str, code: str, name: str, value: float, unit: str, days: int, order: str
) -> dict:
    return {
        "order_id": order,
        "panel_code": "DM" if order == "O1" else "HBA1C",
        "panel_name": "糖尿病组合" if order == "O1" else "糖化血红蛋白",
        "result_id": rid,
        "patient_id": patient,
        "patient_key": f"H1|{patient}",
        "test_standard_vocabulary": "LOINC",
        "test_standard_code": code,
        "test_standard_name": name,
        "value_std": value,
        "unit_std": unit,
        "value_as_number": value,
        "unit_source": unit,
        "result_status": "F",
        "collected_at": NOW - timedelta(days=days),
    }


def _vocab(u: str) -> tuple[tuple[TableSpec, list[tuple[Any, ...]]], ...]:
    """vocab.concept / concept_synonym-shaped temporary views (reference data, no Delta
    commit needed) holding the shipped demo LOINC and ATC
    names (lakehouse/terminology/data), so the planner's lexicon loads in a second."""
    concept = dataclasses.replace(CONCEPT, name=f"vocab.concept_srv_{u}")
    synonym = dataclasses.replace(CONCEPT_SYNONYM, name=f"vocab.concept_synonym_srv_{u}")
    concepts: list[tuple[Any, ...]] = []
    synonyms: list[tuple[Any, ...]] = []
    files = (
        (
            "loinc_demo.csv",
            LOINC,
            "LOINC_NUM",
            "LONG_COMMON_NAME",
            "LONG_COMMON_NAME_ZH",
            "SYNONYMS_ZH",
        ),
        ("atc_demo.csv", ATC, "code", "name", "name_zh", "synonyms"),
    )
    for file, vocab, code, name, name_zh, syn in files:
        with (DATA / file).open(encoding="utf-8") as f:
            for r in csv.DictReader(f):
                cid = len(concepts) + 1
                concepts.append(
                    _row(
                        concept,
                        concept_id=cid,
                        edition="test",
                        concept_code=r[code],
                        concept_name=r[name],
                        concept_name_zh=r[name_zh],
                        vocabulary_id=vocab,
                        standard_concept="S",
                    )
                )
                for alias in filter(None, (r[syn] or "").split(";")):
                    synonyms.append(
                        _row(
                            synonym,
                            concept_id=cid,
                            concept_synonym_name=alias,
                            language="zh",
                            edition="test",
                        )
                    )
    return (concept, concepts), (synonym, synonyms)


def _row(spec: TableSpec, **values: Any) -> tuple[Any, ...]:
    return tuple(values.get(c) for c in spec.column_names)


def _vital(vid: str, patient: str, code: str, value: float, unit: str, days: int) -> dict[str, Any]:
    return {
        "vital_id": vid,
        "patient_id": patient,
        "patient_key": f"H1|{patient}",
        "source_system": "his",
        "encounter_id": "V1" if patient == "P1" else None,
        "source_vocabulary": "LOINC",
        "source_code": code,
        "standard_vocabulary": "LOINC",
        "standard_code": code,
        "standard_name": {"8867-4": "Heart rate", "8480-6": "Systolic blood pressure"}[code],
        "value_as_number": float(value),
        "unit_source": unit,
        "unit_std": unit,
        "measured_at": NOW - timedelta(days=days),
    }


NOTE_TEXT = "张三，男，主诉：口渴多饮三月。"
#: A stored C0034 section whose text holds markup, an entity and a control character.
HOSTILE_TEXT = '口渴多饮三月。</text><script>alert(1)</script>&amp;<!ENTITY x "y">\x01'

NOTE_DEID_TEXT = "王五，男，主诉：口渴多饮三月。"


def _fhir_rows(t: FhirTables) -> list[tuple[TableSpec, list[tuple[Any, ...]]]]:
    """The tables only the FHIR API reads (vital signs, procedures, notes, imaging, staff)."""
    p1 = {"patient_id": "P1", "patient_key": "H1|P1"}
    version = NOW - timedelta(days=4)
    return [
        (
            t.vital_sign,
            _rows(
                t.vital_sign,
                _vital("VS1", "P1", "8867-4", 72, "/min", 4),
                _vital("VS2", "P1", "8480-6", 130, "mm[Hg]", 40),
                _vital("VS3", "P2", "8867-4", 90, "/min", 2),
            ),
        ),
        (
            t.procedure,
            _rows(
                t.procedure,
                {
                    **p1,
                    "procedure_id": "PR1",
                    "source_system": "his",
                    "encounter_id": "V1",
                    "source_vocabulary": "LOCAL:H1:PROC",
                    "source_code": "CT-HEAD",
                    "source_name": "头颅CT平扫",
                    "standard_vocabulary": "ICD9CM3",
                    "standard_code": "87.03",
                    "standard_name": "Computerized axial tomography of head",
                    "status": "completed",
                    "provider_id": "D7",
                    "performed_at": NOW - timedelta(days=5),
                },
            ),
        ),
        (
            t.note,
            _rows(
                t.note,
                {
                    **p1,
                    "note_id": "N1",
                    "source_system": "emr",
                    "encounter_id": "V1",
                    "note_type": "progress",
                    "note_title": "首次病程记录",
                    "language": "zh",
                    "note_text": NOTE_TEXT,
                    "author_name": "王医生",
                    "recorded_at": version,
                    "source_updated_at": version,
                },
            ),
        ),
        (
            t.note_deid,
            _rows(
                t.note_deid,
                {
                    "note_id": "N1",
                    "patient_key": "H1|P1",
                    "source_system": "emr",
                    "encounter_id": "V1",
                    "text_deid": NOTE_DEID_TEXT,
                    "nlp_status": "ok",
                    "source_updated_at": version,
                },
            ),
        ),
        (
            t.imaging_study,
            _rows(
                t.imaging_study,
                {
                    **p1,
                    "study_instance_uid": "1.2.840.99.1",
                    "source_system": "pacs",
                    "encounter_id": "V1",
                    "accession_number": "ACC1",
                    "modalities": ["CT"],
                    "study_description": "CT HEAD",
                    "study_at": NOW - timedelta(days=5),
                    "series_count": 1,
                    "instance_count": 20,
                },
            ),
        ),
        (
            t.imaging_series,
            _rows(
                t.imaging_series,
                {
                    **p1,
                    "series_instance_uid": "1.2.840.99.1.1",
                    "study_instance_uid": "1.2.840.99.1",
                    "source_system": "pacs",
                    "modality": "CT",
                    "series_description": "AXIAL",
                    "instance_count": 20,
                },
            ),
        ),
        (
            t.org,
            _rows(
                t.org,
                {
                    "org_code": "H1",
                    "source_system": "his",
                    "org_name": "第一医院",
                    "org_oid": "2.16.156.10011.99",
                    "org_kind": "hospital",
                },
            ),
        ),
        (
            t.provider,
            _rows(
                t.provider,
                {
                    "provider_id": "D7",
                    "source_system": "his",
                    "provider_name": "王医生",
                    "dept_code": "A",
                    "title": "主任医师",
                },
            ),
        ),
    ]


def _interop_rows(t: InteropTables) -> list[tuple[TableSpec, list[tuple[Any, ...]]]]:
    """The tables only the 4A services read (departments, transfers, CDA documents)."""
    p1 = {"patient_id": "P1", "patient_key": "H1|P1", "encounter_id": "V1"}
    section = {"code": "10154-3", "code_system": "2.16.840.1.113883.6.1", "title": "主诉"}
    return [
        (
            t.dept,
            _rows(
                t.dept,
                {"dept_code": "A", "source_system": "his", "dept_name": "内分泌科",
                 "ward_name": "五病区"},
                {"dept_code": "B", "source_system": "his", "dept_name": "心内科"},
            ),
        ),
        (
            t.encounter_transfer,
            _rows(
                t.encounter_transfer,
                {**p1, "transfer_id": "T1", "source_system": "his", "from_dept_code": "ICU",
                 "to_dept_code": "A", "bed_no": "12", "transfer_at": NOW - timedelta(days=5)},
            ),
        ),
        (
            t.clinical_document,
            _rows(
                t.clinical_document,
                {**p1, "document_id": "2.16.156.10011.1.1^V1-C0034", "source_system": "emr",
                 "document_type_code": "C0034", "document_type_system": "2.16.156.10011.2.4",
                 "template_ids": ["2.16.156.10011.2.1.1.54"], "title": "入院记录",
                 "effective_at": NOW - timedelta(days=6), "patient_name": "张三",
                 "author_id": "D7", "author_name": "王医生", "custodian_code": "H1",
                 "sections": [{**section, "text": HOSTILE_TEXT}]},
            ),
        ),
    ]  # fmt: skip


def _seed(spark: SparkSession, t: ServiceTables, directory: TableSpec) -> None:
    patients = _rows(
        t.patient,
        {
            "patient_id": "P1",
            "patient_key": "H1|P1",
            "name": "张三",
            "sex_code": "1",
            "birth_date": date(1960, 5, 17),
            "identifiers": {"urn:oid:2.16.156.10011.1.2": "P1-HIS"},
        },
        {"patient_id": "P2", "patient_key": "H1|P2", "name": "李四", "sex_code": "2"},
    )
    visits = _rows(
        t.encounter,
        {
            "encounter_id": "V1",
            "patient_id": "P1",
            "patient_key": "H1|P1",
            "source_system": "his",
            "encounter_class": "inpatient",
            "status": "finished",
            "dept_name": "内分泌科",
            "attending_provider_id": "D7",
            "start_at": NOW - timedelta(days=6),
            "end_at": NOW - timedelta(days=2),
        },
    )
    diagnoses = _rows(
        t.diagnosis,
        {
            "diagnosis_id": "DX1",
            "patient_id": "P1",
            "patient_key": "H1|P1",
            "encounter_id": "V1",
            "source_system": "his",
            "source_vocabulary": "LOCAL:H1:dx",
            "source_code": "TNB",
            "source_name": "2型糖尿病",
            "standard_vocabulary": "ICD10",
            "standard_code": "E11.9",
            "standard_name": "Type 2 diabetes mellitus without complications",
            "clinical_status": "active",
            "diagnosed_at": NOW - timedelta(days=5),
        },
        {
            "diagnosis_id": "DX2",
            "patient_id": "P2",
            "patient_key": "H1|P2",
            "source_system": "his",
            "standard_vocabulary": "ICD10",
            "standard_code": "I10",
            "diagnosed_at": NOW - timedelta(days=3),
        },
    )
    labs = _rows(
        t.lab_result,
        _lab("R1", "P1", "4548-4", "Hemoglobin A1c", 7.9, "%", 90, "O1"),
        _lab("R2", "P1", "4548-4", "Hemoglobin A1c", 6.8, "%", 5, "O2"),
        _lab("R3", "P1", "2345-7", "Glucose", 7.2, "mmol/L", 60, "O1"),
        _lab("R4", "P2", "4548-4", "Hemoglobin A1c", 9.1, "%", 3, "O4"),
    )
    meds = _rows(
        t.medication_order,
        {
            "medication_order_id": "M1",
            "patient_id": "P1",
            "patient_key": "H1|P1",
            "source_system": "his",
            "drug_standard_vocabulary": "ATC",
            "drug_standard_code": "A10BA02",
            "drug_standard_name": "metformin",
            "dose": 0.5,
            "dose_unit": "g",
            "route": "口服",
            "frequency": "bid",
            "status": "active",
            "ordered_at": NOW - timedelta(days=20),
        },
    )
    data = [
        *_fhir_rows(t),
        *_interop_rows(t),
        (directory, [("P1", "A", "H1"), ("P2", "B", "H1")]),
        (t.patient, patients),
        (
            t.person_features,
            _rows(
                t.person_features,
                {
                    "patient_id": "P1",
                    "record_key": "H1|lis|P1",
                    "name_s": "张三",
                    "name_py": "ZHANGSAN",
                },
                {
                    "patient_id": "P2",
                    "record_key": "H1|lis|P2",
                    "name_s": "李四",
                    "name_py": "LISI",
                },
            ),
        ),
        (t.encounter, visits),
        (t.lab_result, labs),
        (t.medication_order, meds),
        (t.diagnosis, diagnoses),
    ]
    spark.sql("CREATE SCHEMA IF NOT EXISTS silver")
    for spec, rows in data:  # one Delta commit per table
        df = spark.createDataFrame(rows, spec.schema)
        df.write.format("delta").saveAsTable(spec.name)


@pytest.fixture(scope="package")
def service(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    u = uuid.uuid4().hex[:8]
    specs = (
        PATIENT, ENCOUNTER, LAB_RESULT, MEDICATION_ORDER, DIAGNOSIS, VITAL_SIGN, PROCEDURE, NOTE,
        NOTE_DEID, IMAGING_STUDY, IMAGING_SERIES, ORG, PROVIDER, DEPT, ENCOUNTER_TRANSFER,
        CLINICAL_DOCUMENT, PERSON_FEATURES,
    )  # fmt: skip
    tables = ServiceTables(*(dataclasses.replace(s, name=f"{s.name}_srv_{u}") for s in specs))
    directory = TableSpec(
        name=f"silver.patient_directory_srv_{u}",
        comment="Test patient directory: department and site of each patient.",
        columns=(
            column("patient_id", StringType(), "Patient id.", phi=Phi.IDENTIFIER),
            column("department_code", StringType(), "Department."),
            column("institution_code", StringType(), "Institution."),
        ),
    )
    _seed(spark, tables, directory)
    tmp = tmp_path_factory.mktemp("serving")
    policy_file = tmp / "policy.yaml"
    policy_file.write_text(POLICY.format(directory=directory.name))
    catalog = {s.name: s for s in (*tables.interop(), tables.person_features, directory)}
    audit = MemoryAuditLog()
    access = AccessService(spark, SqlGuard(load_policy(policy_file), catalog), audit, KEY)
    identity = IdentityService(
        tmp / "accounts.db", audit, SecuritySettings(), SessionSigner(KEY, 900)
    )
    root = Principal("root", "admin")
    identity.create_account(
        root, "dr_a", PASSWORD, ("clinician",), department="A", institutions=("H1",)
    )
    identity.create_account(
        root, "nurse_a", PASSWORD, ("nurse",), department="A", institutions=("H1",)
    )
    (concept, concepts), (synonym, synonyms) = _vocab(u)
    for spec, rows in ((concept, concepts), (synonym, synonyms)):
        spark.createDataFrame(rows, spec.schema).createOrReplaceTempView(spec.table_name)
    lexicon = load_lexicon(
        spark, max_terms=10_000, concept_table=concept.table_name, synonym_table=synonym.table_name
    )
    cfg = settings.model_copy(update={"serve": ServeSettings()})  # HTTPS, the default
    tls = tls_files(cfg)
    assert tls is not None
    app = create_app(spark, cfg, identity=identity, access=access, tables=tables, lexicon=lexicon)
    with _running(app, tls) as url:
        yield Service(url, audit, tables, spark, client_context(cfg))


@contextmanager
def _running(app: Any, tls: tuple[Path, Path]) -> Iterator[str]:
    """Serve ``app`` over HTTPS with uvicorn in a daemon thread on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", ssl_certfile=tls[0], ssl_keyfile=tls[1]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the assistant service did not start")
        time.sleep(0.05)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def client(service: Service, token: str | None = None) -> httpx.Client:
    """An HTTPS client of the service, trusting its certificate, signed in with ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=service.url, headers=headers, timeout=120, verify=service.verify)


@pytest.fixture(scope="module")
def token(service: Service) -> str:
    """A session token of the department-A clinician ``dr_a``."""
    with client(service) as c:
        r = c.post("/api/login", json={"username": "dr_a", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])
