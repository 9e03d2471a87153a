"""Small worlds the notebooks run against, in the test run's one Spark session.

``gold_world``: gold OMOP person, condition, measurement and concept tables under names of
their own, their de-identified views (``jobs.deid.refresh``, as ``lakehouse deid refresh``
builds them) and the tabular baseline's feature table over the same persons. The cohort
the cohort notebook finds is computed here independently, from the rows written.

``assistant_world``: the five silver tables the assistant's tools read, a patient
directory, a policy and an in-memory audit log (the shapes of tests/integration/serving,
whose helpers build the rows; its package fixture is not reused because it starts an HTTPS
server and seeds sixteen tables the notebook does not need).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import StringType

from lakehouse.settings import Settings
from lakehouse.tables.features.ml import HISTORY_COLUMNS, PATIENT_FEATURES
from lakehouse.tables.gold.omop import SPECS
from lakehouse.tables.spec import Phi, TableSpec, column
from tests.support.processes import REPO

PERSONS = 120
T0 = datetime(2026, 3, 1, 9, 0)
E11, I10, HBA1C = 634447052094869470, 393887812730821921, 3004410
MALE, FEMALE = 8507, 8532
POOR_CONTROL = 8.0  # the cohort notebook's default threshold (HbA1c %, latest result)


@dataclass
class GoldWorld:
    person: str
    condition: str
    measurement: str
    concept: str
    features: str
    views: dict[str, str]
    cohort: set[int]
    t2dm: set[int]


def _world_rows(
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], ...]:
    persons: list[dict[str, Any]] = []
    conds: list[dict[str, Any]] = []
    meas: list[dict[str, Any]] = []
    feats: list[dict[str, Any]] = []
    for pid in range(1, PERSONS + 1):
        age = int(rng.integers(25, 88))
        male = pid % 2 == 1
        drugs = float(rng.poisson(1 + 3 * (age > 55)))
        index = T0 + timedelta(days=int(rng.integers(0, 60)))
        persons.append(
            {
                "person_id": pid,
                "gender_concept_id": MALE if male else FEMALE,
                "year_of_birth": T0.year - age,
                "birth_datetime": datetime(T0.year - age, 6, 1),
                "gender_source_value": "1" if male else "2",
                "etl_institution_code": "H0001",
            }
        )
        row: dict[str, Any] = dict.fromkeys(HISTORY_COLUMNS, 0.0)
        row.update(
            index_id=pid * 10,
            person_id=pid,
            index_time=index,
            age_years=float(age),
            sex_male=float(male),
            drugs_distinct_365d=drugs,
            visits_total_365d=float(rng.poisson(2)),
            build_id="nb",
        )
        feats.append(row)
        logit = -2.0 + 0.06 * (age - 50) + 0.5 * drugs
        t2dm = bool(rng.random() < 1 / (1 + np.exp(-logit)))
        if t2dm:  # recorded at the index visit: a positive label for the tabular task
            at = index + timedelta(hours=1)
            conds.append(_condition(pid * 100, pid, "ICD10:E11.900", E11, at))
        if pid % 3 == 0:
            at = index - timedelta(days=30)
            conds.append(_condition(pid * 100 + 1, pid, "ICD10:I10.x00", I10, at))
        mean, sd = (8.3, 1.4) if t2dm else (5.6, 0.4)
        for k in range(int(rng.integers(1, 4))):
            at = index - timedelta(days=90 * k, hours=int(rng.integers(0, 12)))
            value = round(float(np.clip(rng.normal(mean, sd), 4.5, 13.5)), 1)
            meas.append(
                {
                    "measurement_id": pid * 100 + k,
                    "person_id": pid,
                    "measurement_concept_id": HBA1C,
                    "measurement_date": at.date(),
                    "measurement_datetime": at,
                    "value_as_number": value,
                    "unit_source_value": "%",
                    "measurement_source_value": "LOINC:4548-4",
                    "etl_institution_code": "H0001",
                }
            )
    return persons, conds, meas, feats


def _condition(row_id: int, person: int, code: str, concept: int, at: datetime) -> dict[str, Any]:
    return {
        "condition_occurrence_id": row_id,
        "person_id": person,
        "condition_concept_id": concept,
        "condition_start_date": at.date(),
        "condition_start_datetime": at,
        "condition_source_value": code,
        "etl_institution_code": "H0001",
    }


def _expected_cohort(
    conds: list[dict[str, Any]], meas: list[dict[str, Any]]
) -> tuple[set[int], set[int]]:
    """Persons with an E11 condition, and those of them whose newest HbA1c is >= 8.0 %."""
    t2dm = {c["person_id"] for c in conds if c["condition_concept_id"] == E11}
    latest: dict[int, tuple[datetime, float]] = {}
    for m in meas:
        at, pid = m["measurement_datetime"], m["person_id"]
        if pid not in latest or at > latest[pid][0]:
            latest[pid] = (at, m["value_as_number"])
    return t2dm, {p for p in t2dm if p in latest and latest[p][1] >= POOR_CONTROL}


@pytest.fixture(scope="package")
def gold_world(spark: SparkSession, settings: Settings) -> GoldWorld:
    from jobs import deid as deid_job
    from lakehouse.governance.deid.policy import load_deid_policy

    u = uuid.uuid4().hex[:8]
    specs = {
        k: dataclasses.replace(SPECS[k], name=f"gold.{k}_nb_{u}")
        for k in ("person", "condition_occurrence", "measurement", "concept")
    }
    features = dataclasses.replace(PATIENT_FEATURES, name=f"features.patient_features_nb_{u}")
    persons, conds, meas, feats = _world_rows(np.random.default_rng(13))
    concepts = [
        (E11, "Type 2 diabetes mellitus", "Condition", "ICD10", "E11.900", "S"),
        (I10, "Essential hypertension", "Condition", "ICD10", "I10.x00", "S"),
        (HBA1C, "Hemoglobin A1c/Hemoglobin.total in Blood", "Measurement", "LOINC", "4548-4", "S"),
        (MALE, "MALE", "Gender", "Gender", "M", "S"),
        (FEMALE, "FEMALE", "Gender", "Gender", "F", "S"),
    ]
    cols = [
        "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_code",
        "standard_concept",
    ]  # fmt: skip
    for schema in ("gold", "features"):
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for spec, rows in (
        (specs["person"], persons),
        (specs["condition_occurrence"], conds),
        (specs["measurement"], meas),
        (specs["concept"], [dict(zip(cols, c, strict=True)) for c in concepts]),
        (features, feats),
    ):  # one Delta commit per table, in the spec's columns (those not given are null)
        data = [tuple(r.get(c) for c in spec.column_names) for r in rows]
        spark.createDataFrame(data, spec.schema).write.format("delta").saveAsTable(spec.name)
    deid_job.refresh(spark, settings, specs=list(specs.values()))
    policy = load_deid_policy()
    t2dm, cohort = _expected_cohort(conds, meas)
    return GoldWorld(
        person=specs["person"].name,
        condition=specs["condition_occurrence"].name,
        measurement=specs["measurement"].name,
        concept=specs["concept"].name,
        features=features.name,
        views={k: policy.view_name(s.name) for k, s in specs.items()},
        cohort=cohort,
        t2dm=t2dm,
    )


@dataclass
class AssistantWorld:
    tables: Any  # serving.assistant.tools.ToolTables
    directory: str
    access: Any  # lakehouse.governance.access.AccessService
    audit: Any  # MemoryAuditLog
    concept_table: str
    synonym_table: str


@pytest.fixture(scope="package")
def assistant_world(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> AssistantWorld:
    from lakehouse.governance.access import AccessService
    from lakehouse.governance.audit import MemoryAuditLog
    from lakehouse.governance.policy import load_policy
    from lakehouse.governance.sql_guard import SqlGuard
    from serving.assistant.tools import ToolTables
    from tests.integration.serving.conftest import KEY, POLICY, _lab, _rows, _vocab

    u = uuid.uuid4().hex[:8]
    base = ToolTables()
    tables = ToolTables(*(dataclasses.replace(s, name=f"{s.name}_nb_{u}") for s in base.all()))
    directory = TableSpec(
        name=f"silver.patient_directory_nb_{u}",
        comment="Test patient directory: department and site of each patient.",
        columns=(
            column("patient_id", StringType(), "Patient id.", phi=Phi.IDENTIFIER),
            column("dept_code", StringType(), "Department."),
            column("institution_code", StringType(), "Institution."),
        ),
    )
    now = datetime.now().replace(microsecond=0)
    data = [
        (directory, [("P1", "A", "H1"), ("P2", "B", "H1")]),
        (
            tables.patient,
            _rows(
                tables.patient,
                {"patient_id": "P1", "patient_key": "H1|P1", "sex_code": "1",
                 "birth_date": date(1960, 5, 17)},
                {"patient_id": "P2", "patient_key": "H1|P2", "sex_code": "2"},
            ),
        ),
        (
            tables.encounter,
            _rows(
                tables.encounter,
                {"encounter_id": "V1", "patient_id": "P1", "patient_key": "H1|P1",
                 "source_system": "his", "encounter_class": "inpatient", "status": "finished",
                 "dept_code": "A",
                 "start_at": now - timedelta(days=6), "end_at": now - timedelta(days=2)},
            ),
        ),
        (
            tables.lab_result,
            _rows(
                tables.lab_result,
                _lab("R1", "P1", "4548-4", "Hemoglobin A1c", 9.4, "%", 90, "O1"),
                _lab("R2", "P1", "4548-4", "Hemoglobin A1c", 8.6, "%", 5, "O2"),
                _lab("R4", "P2", "4548-4", "Hemoglobin A1c", 7.1, "%", 3, "O4"),
            ),
        ),
        (
            tables.medication_order,
            _rows(
                tables.medication_order,
                {"medication_order_id": "M1", "patient_id": "P1", "patient_key": "H1|P1",
                 "source_system": "his", "drug_standard_vocabulary": "ATC",
                 "drug_standard_code": "A10BA02", "drug_standard_name": "metformin",
                 "dose": 0.5, "dose_unit": "g", "route": "口服", "frequency": "bid",
                 "status": "active", "ordered_at": now - timedelta(days=20)},
            ),
        ),
        (
            tables.diagnosis,
            _rows(
                tables.diagnosis,
                {"diagnosis_id": "DX1", "patient_id": "P1", "patient_key": "H1|P1",
                 "encounter_id": "V1", "source_system": "his", "standard_vocabulary": "ICD10",
                 "standard_code": "E11.9",
                 "standard_name": "Type 2 diabetes mellitus without complications",
                 "clinical_status": "active", "diagnosed_at": now - timedelta(days=5)},
                {"diagnosis_id": "DX2", "patient_id": "P2", "patient_key": "H1|P2",
                 "source_system": "his", "standard_vocabulary": "ICD10",
                 "standard_code": "E11.9", "diagnosed_at": now - timedelta(days=3)},
            ),
        ),
    ]  # fmt: skip
    spark.sql("CREATE SCHEMA IF NOT EXISTS silver")
    for spec, rows in data:  # one Delta commit per table
        spark.createDataFrame(rows, spec.schema).write.format("delta").saveAsTable(spec.name)
    (concept, concepts), (synonym, synonyms) = _vocab(u)
    for spec, rows in ((concept, concepts), (synonym, synonyms)):
        spark.createDataFrame(rows, spec.schema).createOrReplaceTempView(spec.table_name)
    policy_file = tmp_path_factory.mktemp("nb-assistant") / "policy.yaml"
    # The shipped policy's scope columns (the directory's dept_code, as in production).
    policy = POLICY.replace("version: 1\n", "version: 1\ncolumns:\n  department: dept_code\n")
    policy_file.write_text(policy.format(directory=directory.name), encoding="utf-8")
    catalog = {s.name: s for s in (*tables.all(), directory)}
    audit = MemoryAuditLog()
    access = AccessService(spark, SqlGuard(load_policy(policy_file), catalog), audit, KEY)
    return AssistantWorld(
        tables, directory.name, access, audit, concept.table_name, synonym.table_name
    )


@pytest.fixture(scope="package")
def notebook_env(settings: Settings) -> Iterator[None]:
    """LAKEHOUSE_* variables so a notebook's ``load_settings()`` gives the test run's
    settings (its data folder, the shared session's Spark settings)."""
    values = {
        "HOME": str(REPO),
        "DATA_DIR": str(settings.data_dir),
        "SPARK__MASTER": settings.spark.master,
        "SPARK__SHUFFLE_PARTITIONS": str(settings.spark.shuffle_partitions),
        "SPARK__UI_ENABLED": "false",
        "SPARK__DRIVER_MEMORY": settings.spark.driver_memory,
        "SPARK__LOG_LEVEL": settings.spark.log_level,
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in values.items():
            mp.setenv(f"LAKEHOUSE_{k}", v)
        yield


@pytest.fixture
def figures(tmp_path: Path) -> Path:
    return tmp_path / "figures"
