"""Guarded reads on real Spark: row filters hold, refusals and break-glass are audited,
and an analyst's queries never return a canary name, 身份证号, phone or address."""

from __future__ import annotations

import dataclasses

import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog, first_broken, patient_ref
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.tables.writer import ensure_table
from tests.unit.governance.demo import COUNTS, LABS, PATIENTS, demo_policy

KEY = b"p" * 32
CANARIES = ["张三", "李四", "王五", "110101199003071234", "13800138000", "北京市东城区1号"]
DR_A = Principal("dr_a", "clinician", department="A", institutions=("H1",))
ANALYST = Principal("ana", "analyst", institutions=("H1", "H2"))


@pytest.fixture(scope="module")
def world(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[AccessService, MemoryAuditLog, dict[str, str]]:
    import uuid

    u = uuid.uuid4().hex[:8]
    specs = {s.name: dataclasses.replace(s, name=f"{s.name}_{u}") for s in (PATIENTS, LABS, COUNTS)}
    names = {k: t.name for k, t in specs.items()}
    for spec in specs.values():
        ensure_table(spark, spec)
    p, lab, c = names[PATIENTS.name], names[LABS.name], names[COUNTS.name]
    spark.sql(
        f"INSERT INTO {p} VALUES "
        "('P1', '张三', '110101199003071234', '13800138000', '北京市东城区1号', DATE'1990-03-07', "
        "'M', 'A', 'H1'), "
        "('P2', '李四', '110101198501011111', '13900139000', '上海市2号', DATE'1985-01-01', "
        "'F', 'B', 'H1'), "
        "('P3', '王五', '110101197001012222', '13700137000', '广州市3号', DATE'1970-01-01', "
        "'M', 'A', 'H2')"
    )
    spark.sql(
        f"INSERT INTO {lab} VALUES ('L1', 'P1', '2345-7', 5.5, 'H1'), "
        "('L2', 'P2', '2345-7', 7.1, 'H1'), ('L3', 'P3', '2345-7', 6.2, 'H2')"
    )
    spark.sql(f"INSERT INTO {c} VALUES ('A', 'H1', 1.0), ('B', 'H1', 1.0), ('A', 'H2', 1.0)")
    policy = demo_policy(tmp_path_factory.mktemp("policy"))
    policy = policy.model_copy(update={"patient_directory": p})
    audit = MemoryAuditLog()
    catalog = {t.name: t for t in specs.values()}
    return AccessService(spark, SqlGuard(policy, catalog), audit, KEY), audit, names


def test_clinician_sees_own_department_and_site_only(world: tuple) -> None:
    svc, audit, n = world
    p, lab = n[PATIENTS.name], n[LABS.name]
    rows = svc.query(DR_A, f"SELECT patient_id, name FROM {p}", purpose="treatment")
    assert [r.patient_id for r in rows] == ["P1"]
    joined = svc.query(
        DR_A,
        f"SELECT l.lab_id FROM {lab} l JOIN {p} x ON l.patient_id = x.patient_id "
        f"WHERE l.value > (SELECT min(value) - 10 FROM {lab})",
        purpose="treatment",
    )
    assert [r.lab_id for r in joined] == ["L1"]  # L2 is dept B, L3 is site H2
    assert audit.rows[-1]["action"] == "read"
    assert audit.rows[-1]["row_count"] == 1


def test_other_department_patient_is_refused_and_audited(world: tuple) -> None:
    svc, audit, n = world
    with pytest.raises(LakehouseError) as exc:
        svc.query(
            DR_A, f"SELECT value FROM {n[LABS.name]} WHERE patient_id = 'P2'", purpose="treatment"
        )
    assert exc.value.code is ErrorCode.ACCESS_DENIED
    last = audit.rows[-1]
    assert (last["action"], last["outcome"], last["reason"]) == (
        "access_denied",
        "denied",
        "LH-SEC-006",
    )
    assert last["patient_ref"] == patient_ref(KEY, "P2")
    assert "P2" not in str(exc.value)
    assert "P2" not in repr(audit.rows)


def test_break_glass_with_reason_succeeds_and_is_flagged(world: tuple) -> None:
    svc, audit, n = world
    sql = f"SELECT value FROM {n[LABS.name]} WHERE patient_id = 'P2'"
    with pytest.raises(LakehouseError) as exc:
        svc.query(DR_A, sql, purpose="treatment", break_glass_reason="  ")
    assert exc.value.code is ErrorCode.ACCESS_DENIED
    rows = svc.query(DR_A, sql, purpose="treatment", break_glass_reason="cardiac arrest in ED")
    assert [r.value for r in rows] == [7.1]
    last = audit.rows[-1]
    assert last["action"] == "break_glass"
    assert last["break_glass"] is True
    assert last["reason"] == "cardiac arrest in ED"
    assert last["patient_ref"] == patient_ref(KEY, "P2")
    assert last["versions"].startswith(n[LABS.name] + "@")
    assert first_broken(audit.rows) is None


def test_read_fails_closed_when_the_audit_write_fails(world: tuple) -> None:
    svc, audit, n = world
    audit.fail = True
    try:
        with pytest.raises(LakehouseError) as exc:
            svc.query(DR_A, f"SELECT name FROM {n[PATIENTS.name]}", purpose="treatment")
        assert exc.value.code is ErrorCode.AUDIT_WRITE_FAILED
    finally:
        audit.fail = False


ANALYST_SQL = [
    "SELECT * FROM {p}",
    "SELECT name FROM {p}",
    "SELECT * FROM {p} WHERE sex = 'M'",
    "SELECT p.*, l.* FROM {p} p JOIN {lab} l ON p.institution_code = l.institution_code",
    "SELECT * FROM (SELECT * FROM {p}) s",
    "WITH x AS (SELECT * FROM {p}) SELECT * FROM x UNION ALL SELECT * FROM x",
    "SELECT concat_ws(',', *) FROM {p}",
    "SELECT to_json(struct(*)) FROM {p}",
    "SELECT phone FROM {p}",
    "SELECT id_card AS x FROM {p}",
    "SELECT department_code, count(*) FROM {p} GROUP BY department_code",
    "SELECT * FROM {c} c JOIN {p} p ON c.department_code = p.department_code",
    "SELECT max(address) FROM {p}",
]


@pytest.mark.parametrize("template", ANALYST_SQL)
def test_analyst_never_gets_a_canary(world: tuple, template: str) -> None:
    svc, _, n = world
    sql = template.format(p=n[PATIENTS.name], lab=n[LABS.name], c=n[COUNTS.name])
    try:
        rows = svc.query(ANALYST, sql, purpose="research")
    except LakehouseError as exc:
        code = exc.code
        rows = []
    else:
        code = None
    if code is not None:
        assert code is ErrorCode.ACCESS_DENIED
        return
    text = repr([r.asDict() for r in rows])
    assert rows
    for canary in CANARIES:
        assert canary not in text
