"""The shipped policy over silver-shaped tables: a clinician's department scope reaches the
labs (which have no department) through the patient directory derived from encounters and
transfers, per institution; without the directory such reads are refused (fail closed)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.directory import PATIENT_DIRECTORY, refresh_patient_directory
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.tables.silver.clinical import LAB_RESULT
from lakehouse.tables.silver.encounter import ENCOUNTER, ENCOUNTER_TRANSFER
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import conform

CARDIO = Principal("dr_c", "clinician", department="CARD", institutions=("H1",))
ENDO = Principal("dr_e", "clinician", department="ENDO", institutions=("H1",))
BOTH_SITES = Principal("dr_b", "clinician", department="CARD", institutions=("H1", "H2"))


def _write(spark: SparkSession, spec: TableSpec, rows: list[dict[str, Any]]) -> None:
    base = {"source_system": "his", "bronze_table": "bronze.x", "is_deleted": False}
    df = spark.createDataFrame([{**base, **r} for r in rows])
    conform(df, spec).write.format("delta").mode("append").saveAsTable(spec.name)


@pytest.fixture(scope="module")
def world(spark: SparkSession) -> dict[str, Any]:
    u = uuid.uuid4().hex[:8]
    enc, tra, lab = (
        dataclasses.replace(s, name=f"{s.name}_{u}")
        for s in (ENCOUNTER, ENCOUNTER_TRANSFER, LAB_RESULT)
    )
    directory = dataclasses.replace(PATIENT_DIRECTORY, name=f"governance.patient_directory_{u}")
    spark.sql("CREATE SCHEMA IF NOT EXISTS silver")
    # P1 was seen in cardiology at H1; P2 in endocrinology, then transferred to cardiology;
    # P3 only in endocrinology; at H2 a different person also has the id P3, in cardiology.
    _write(spark, enc, [
        {"institution_code": "H1", "encounter_id": "E1", "patient_id": "P1", "dept_code": "CARD"},
        {"institution_code": "H1", "encounter_id": "E2", "patient_id": "P2", "dept_code": "ENDO"},
        {"institution_code": "H1", "encounter_id": "E3", "patient_id": "P3", "dept_code": "ENDO"},
        {"institution_code": "H2", "encounter_id": "E4", "patient_id": "P3", "dept_code": "CARD"},
    ])  # fmt: skip
    _write(spark, tra, [
        {"institution_code": "H1", "transfer_id": "T1", "patient_id": "P2",
         "from_dept_code": "ENDO", "to_dept_code": "CARD"},
    ])  # fmt: skip
    _write(spark, lab, [
        {"institution_code": i, "result_id": r, "patient_id": p, "value_as_number": v}
        for i, r, p, v in [("H1", "L1", "P1", 1.0), ("H1", "L2", "P2", 2.0),
                           ("H1", "L3", "P3", 3.0), ("H2", "L4", "P3", 4.0),
                           ("H1", "L5", "P9", 5.0)]  # P9: no encounter names a department
    ])  # fmt: skip
    # Earlier versions kept the directory as a view: the first refresh replaces it.
    spark.sql("CREATE SCHEMA IF NOT EXISTS governance")
    spark.sql(f"CREATE VIEW {directory.name} AS SELECT institution_code FROM {enc.name}")
    assert refresh_patient_directory(
        spark, table=directory.name, encounters=enc.name, transfers=tra.name
    )
    assert spark.catalog.getTable(directory.name).tableType != "VIEW"
    policy = load_policy(None)  # the shipped default policy
    assert policy.patient_directory == PATIENT_DIRECTORY.name
    catalog = {s.name: s for s in (enc, tra, lab, directory)}
    with_dir = policy.model_copy(update={"patient_directory": directory.name})
    audit = MemoryAuditLog()
    return {
        "lab": lab.name,
        "refresh": lambda: refresh_patient_directory(
            spark, table=directory.name, encounters=enc.name, transfers=tra.name
        ),
        "encounters": enc.name,
        "directory": directory.name,
        "access": AccessService(spark, SqlGuard(with_dir, catalog), audit, b"k" * 32),
        "no_directory": AccessService(
            spark, SqlGuard(policy, {s.name: s for s in (enc, tra, lab)}), audit, b"k" * 32
        ),
    }


def _labs(world: dict[str, Any], who: Principal, key: str = "access") -> list[tuple[str, str]]:
    sql = f"SELECT institution_code, result_id FROM {world['lab']} ORDER BY result_id"
    rows = world[key].query(who, sql, purpose="care")
    return [(r["institution_code"], r["result_id"]) for r in rows]


def test_department_scope_reaches_labs_through_encounters_and_transfers(
    world: dict[str, Any],
) -> None:
    # P1 (seen in CARD) and P2 (transferred into CARD); not P3, nor H2's other P3.
    assert _labs(world, CARDIO) == [("H1", "L1"), ("H1", "L2")]
    assert _labs(world, ENDO) == [("H1", "L2"), ("H1", "L3")]


def test_the_same_patient_id_at_another_site_is_another_patient(world: dict[str, Any]) -> None:
    # H2's P3 was seen in cardiology; H1's P3 only in endocrinology: not visible to CARD.
    assert _labs(world, BOTH_SITES) == [("H1", "L1"), ("H1", "L2"), ("H2", "L4")]


def test_a_named_patient_of_another_department_is_refused(world: dict[str, Any]) -> None:
    sql = f"SELECT result_id FROM {world['lab']} WHERE patient_id = 'P3'"
    with pytest.raises(LakehouseError) as refused:
        world["access"].query(CARDIO, sql, purpose="care")
    assert refused.value.code is ErrorCode.ACCESS_DENIED


def test_a_named_patient_of_the_department_or_care_team_is_read(world: dict[str, Any]) -> None:
    # The shipped policy grants clinicians no read of governance.*: the access service's
    # own directory lookup must not need one (it once refused every named patient).
    sql = f"SELECT result_id FROM {world['lab']} WHERE patient_id = 'P1'"
    assert [r["result_id"] for r in world["access"].query(CARDIO, sql, purpose="care")] == ["L1"]
    treating = Principal("dr_t", "clinician", department="ENDO", care_team=("P1",),
                         institutions=("H1",))  # fmt: skip
    assert [r["result_id"] for r in world["access"].query(treating, sql, purpose="care")] == ["L1"]
    # A care-team patient no encounter puts in a department (a member site's FHIR feed).
    p9 = f"SELECT result_id FROM {world['lab']} WHERE patient_id = 'P9'"
    team = Principal("dr_u", "clinician", department="ENDO", care_team=("P9",),
                     institutions=("H1",))  # fmt: skip
    assert [r["result_id"] for r in world["access"].query(team, p9, purpose="care")] == ["L5"]
    with pytest.raises(LakehouseError):
        world["access"].query(ENDO, p9, purpose="care")


def test_an_empty_answer_about_a_care_team_patient_needs_no_directory_lookup(
    world: dict[str, Any],
) -> None:
    # No lab rows for P8: the row filter cannot prove the patient in scope, the care team
    # does, so the answer is empty, not refused, and no directory lookup runs.
    p8 = f"SELECT result_id FROM {world['lab']} WHERE patient_id = 'P8'"
    team = Principal("dr_v", "clinician", department="ENDO", care_team=("P8",),
                     institutions=("H1",))  # fmt: skip
    access = world["access"]
    assert access.query(team, p8, purpose="care") == []
    with pytest.raises(LakehouseError) as refused:  # neither in the team nor the department
        access.query(ENDO, p8, purpose="care")
    assert refused.value.code is ErrorCode.ACCESS_DENIED
    no_spark = AccessService(None, access.guard, access.audit, b"k" * 32)  # type: ignore[arg-type]
    no_spark._require_in_scope(team, ("P8",))  # decided without a query
    with pytest.raises(AttributeError):  # anyone else: the lookup needs Spark
        no_spark._require_in_scope(ENDO, ("P8",))


def test_without_the_directory_department_scoped_reads_fail_closed(world: dict[str, Any]) -> None:
    with pytest.raises(LakehouseError) as refused:
        _labs(world, CARDIO, "no_directory")
    assert refused.value.code is ErrorCode.ACCESS_DENIED


def test_the_directory_follows_silver_and_skips_unchanged_sources(
    spark: SparkSession, world: dict[str, Any]
) -> None:
    def version() -> int:
        return int(spark.sql(f"DESCRIBE HISTORY {world['directory']} LIMIT 1").first()[0])  # type: ignore[index]

    before = version()
    assert world["refresh"]()
    assert version() == before  # the sources have not moved: no commit
    # Silver marks P3's encounter in endocrinology deleted: ENDO no longer sees P3's labs.
    enc = world["encounters"]
    spark.sql(f"UPDATE {enc} SET is_deleted = true WHERE encounter_id = 'E3'")
    try:
        assert world["refresh"]()
        assert _labs(world, ENDO) == [("H1", "L2")]
    finally:
        spark.sql(f"UPDATE {enc} SET is_deleted = false WHERE encounter_id = 'E3'")
        assert world["refresh"]()
    assert _labs(world, ENDO) == [("H1", "L2"), ("H1", "L3")]
