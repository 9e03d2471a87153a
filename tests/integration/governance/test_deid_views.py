"""De-identified views on real Spark: no raw PHI, stable tokens, per-person date shifts,
incremental person keys, no key in the view text, and the k-anonymity check."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs import deid as deid_job
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.deid.catalog import deid_catalog
from lakehouse.governance.deid.person_keys import derive, identifier_token
from lakehouse.governance.deid.policy import load_deid_policy
from lakehouse.governance.keys import deid_key
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.settings import Settings
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import ensure_table
from tests.unit.governance.deid_specs import COUNTS, ENCOUNTER, PATIENT, renamed

CANARIES = [
    "张三", "李四", "王五", "110101199003071234", "440106198501011111", "13800138000",
    "13900139000", "东城区", "天河区", "体育西路", "过敏史", "MSH|^~", "Zhang San",
]  # fmt: skip
THIS_YEAR = date.today().year
World = dict[str, Any]  # the module's tables, ids and views


def _ids(u: str) -> dict[str, str]:
    return {p: f"{p}-{u}" for p in ("P1", "P2", "P3")}


@pytest.fixture(scope="module")
def world(spark: SparkSession, settings: Settings, unique_module: str) -> World:
    u = unique_module
    pat, enc, cnt = renamed(PATIENT, u), renamed(ENCOUNTER, u), renamed(COUNTS, u)
    ids = _ids(u)
    for spec in (pat, enc, cnt):
        ensure_table(spark, spec)
    patients = [
        (ids["P1"], "张三", "110101199003071234", "13800138000", "北京市东城区东华门街道1号",
         "100010", date(1990, 3, 7), 36, "M", "teacher", "过敏史: 青霉素", "MSH|^~\\&|1", "H1"),
        (ids["P2"], "李四", "440106198501011111", "13900139000", "广东省广州市天河区体育西路2号",
         "510620", date(1985, 1, 1), 41, "F", "driver", "Zhang San's neighbour", "MSH|^~\\&|2",
         "H1"),
        (ids["P3"], "王五", None, None, None, "100020", date(1920, 6, 1), 106, "M", None, None,
         None, "H1"),
    ]  # fmt: skip
    spark.createDataFrame(patients, pat.schema).write.insertInto(pat.name)
    t0 = datetime(2024, 5, 1, 8, 30)
    encounters = [
        (f"E1-{u}", ids["P1"], date(2024, 5, 1), t0, date(2024, 5, 4), "张三 admitted",
         "[NAME] admitted", "A", "H1"),
        (f"E2-{u}", ids["P1"], date(2024, 6, 10), t0 + timedelta(days=40), date(2024, 6, 12),
         None, None, "A", "H1"),
        (f"E3-{u}", ids["P2"], date(2024, 5, 1), t0, date(2024, 5, 2), None, None, "B", "H1"),
    ]  # fmt: skip
    spark.createDataFrame(encounters, enc.schema).write.insertInto(enc.name)
    spark.sql(f"INSERT INTO {cnt.name} VALUES ('A', DATE'2024-05-01', 'V1', 2)")
    specs = [pat, enc, cnt]
    report = deid_job.refresh(spark, settings, specs=specs)
    policy = load_deid_policy()
    views = {s.name: policy.view_name(s.name) for s in specs}
    return {"specs": specs, "ids": ids, "views": views, "report": report, "u": u,
            "pat": pat, "enc": enc, "cnt": cnt}  # fmt: skip


@pytest.fixture(scope="module")
def unique_module() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


def _rows(spark: SparkSession, view: str) -> list[dict[str, Any]]:
    return [r.asDict() for r in spark.table(view).collect()]


def test_refresh_builds_every_view_and_keys_every_person(world: World) -> None:
    report = world["report"]
    assert sorted(report.views) == sorted(world["views"].values())
    assert report.persons_added == 3
    assert report.skipped == []


def test_views_show_no_raw_name_phone_id_address_or_text(spark: SparkSession, world: World) -> None:
    for view in world["views"].values():
        text = json.dumps(_rows(spark, view), default=str, ensure_ascii=False)
        for canary in CANARIES:
            assert canary not in text, (view, canary)
        for raw_id in world["ids"].values():
            assert raw_id not in text
    cols = spark.table(world["views"][world["pat"].name]).columns
    assert cols == ["patient_id", "id_card", "address", "postcode", "birth_date", "age", "sex",
                    "institution_code"]  # fmt: skip


def test_quasi_identifiers_are_generalized(spark: SparkSession, world: World) -> None:
    by_year = {r["birth_date"]: r for r in _rows(spark, world["views"][world["pat"].name])}
    assert set(by_year) == {1990, 1985, THIS_YEAR - 90}  # birth dates: year only
    assert (by_year[1990]["address"], by_year[1985]["address"]) == ("北京市", "广东省广州市")
    assert (by_year[1990]["postcode"], by_year[1985]["postcode"]) == ("100", "510")
    assert (by_year[1990]["age"], by_year[1985]["age"]) == ("35-39", "40-44")
    assert by_year[THIS_YEAR - 90]["address"] is None


def test_ages_over_89_are_capped(spark: SparkSession, world: World) -> None:
    view = world["views"][world["pat"].name]
    old = spark.table(view).where("age = '90+'").collect()
    assert len(old) == 1
    assert old[0]["birth_date"] == THIS_YEAR - 90  # born 1920: shown as 90 years old


def test_tokens_are_the_keyed_hash_and_join_across_views(
    spark: SparkSession, settings: Settings, world: World
) -> None:
    key, ids = deid_key(settings), world["ids"]
    pv, ev = world["views"][world["pat"].name], world["views"][world["enc"].name]
    tokens = {r["patient_id"] for r in _rows(spark, pv)}
    assert tokens == {derive(key, pid, settings.deid.shift_max_days).token for pid in ids.values()}
    joined = spark.sql(
        f"SELECT e.encounter_id, p.sex FROM {ev} e JOIN {pv} p ON e.patient_id = p.patient_id"
    ).collect()
    assert len(joined) == 3
    p1 = derive(key, ids["P1"], settings.deid.shift_max_days)
    id_card = spark.table(pv).where(f"patient_id = '{p1.token}'").first()
    assert id_card is not None
    assert id_card["id_card"] == identifier_token(p1, "110101199003071234")  # HMAC oracle
    assert identifier_token(p1, "110101199003071234") != p1.token


def test_dates_are_shifted_consistently_per_person(
    spark: SparkSession, settings: Settings, world: World
) -> None:
    key, n, u = deid_key(settings), settings.deid.shift_max_days, world["u"]
    ev = world["views"][world["enc"].name]
    enc = {r["encounter_id"]: r for r in _rows(spark, ev)}
    p1 = derive(key, world["ids"]["P1"], n)
    p2 = derive(key, world["ids"]["P2"], n)
    e1 = next(r for r in enc.values() if r["patient_id"] == p1.token and r["summary"])
    shift = timedelta(days=p1.shift_days)
    assert 1 <= abs(p1.shift_days) <= n
    assert e1["admit_date"] == date(2024, 5, 1) + shift
    assert e1["admit_time"] == datetime(2024, 5, 1, 8, 30) + shift
    assert e1["discharge_date"] - e1["admit_date"] == timedelta(days=3)  # interval kept
    p1_rows = sorted((r for r in enc.values() if r["patient_id"] == p1.token),
                     key=lambda r: r["admit_date"])  # fmt: skip
    assert p1_rows[1]["admit_date"] - p1_rows[0]["admit_date"] == timedelta(days=40)
    e3 = next(r for r in enc.values() if r["patient_id"] == p2.token)
    assert e3["admit_date"] == date(2024, 5, 1) + timedelta(days=p2.shift_days)
    assert f"E1-{u}" not in enc  # visit numbers are tokens


def test_free_text_is_the_deidentified_counterpart(spark: SparkSession, world: World) -> None:
    rows = _rows(spark, world["views"][world["enc"].name])
    assert sorted(r["summary"] or "" for r in rows) == ["", "", "[NAME] admitted"]
    assert "summary_deid" not in rows[0]


def test_view_text_holds_no_key(spark: SparkSession, settings: Settings, world: World) -> None:
    key = deid_key(settings)
    secrets = derive(key, world["ids"]["P1"], settings.deid.shift_max_days)
    for view in world["views"].values():
        texts = [
            "\n".join(str(r[0]) for r in spark.sql(f"SHOW CREATE TABLE {view}").collect()),
            "\n".join(str(tuple(r)) for r in spark.sql(f"DESCRIBE EXTENDED {view}").collect()),
        ]
        for text in texts:
            assert "SELECT" in text or "View Text" in text or "CREATE VIEW" in text
            for secret in (key.hex(), key.decode("latin-1"), secrets.id_ipad.hex(),
                           secrets.token, str(secrets.shift_days) + " "):  # fmt: skip
                assert secret not in text


def test_new_persons_are_keyed_incrementally(
    spark: SparkSession, settings: Settings, world: World
) -> None:
    pat, u = world["pat"], world["u"]
    ids = list(world["ids"].values())
    where = "person_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    before = {r["person_id"]: r.asDict() for r in
              spark.table("governance.person_keys").where(where).collect()}  # fmt: skip
    row = (f"P4-{u}", "赵六", None, None, None, "200000", date(2000, 1, 1), 26, "F", None, None,
           None, "H1")  # fmt: skip
    spark.createDataFrame([row], pat.schema).write.insertInto(pat.name)
    again = deid_job.refresh(spark, settings, specs=world["specs"])
    assert again.persons_added == 1
    after = {r["person_id"]: r.asDict() for r in
             spark.table("governance.person_keys").where(where).collect()}  # fmt: skip
    assert after == before  # old tokens, shifts and timestamps untouched
    assert deid_job.refresh(spark, settings, specs=world["specs"]).persons_added == 0
    tokens = {r["patient_id"] for r in _rows(spark, world["views"][pat.name])}
    assert {b["token"] for b in before.values()} < tokens
    assert len(tokens) == 4


def test_k_check_fails_on_a_unique_population(
    spark: SparkSession, settings: Settings, world: World
) -> None:
    pat = world["pat"]
    with pytest.raises(LakehouseError) as exc:
        deid_job.check(spark, settings, specs=world["specs"], tables=[pat.name])
    assert exc.value.code is ErrorCode.DEID_K_ANONYMITY_BELOW
    view = world["views"][pat.name]
    stored = spark.table("dq.k_anonymity").where(f"view = '{view}'").collect()
    assert len(stored) == 1
    r = stored[0]
    assert (r["k"], r["passed"], r["unit"], r["threshold"]) == (1, False, "persons", 5)
    assert r["records_below"] == r["records"] >= 3  # every person alone in its class
    assert "birth_date" in r["quasi_identifiers"]


def test_k_check_passes_on_a_generalized_population(
    spark: SparkSession, settings: Settings, unique_module: str
) -> None:
    from pyspark.sql.types import StringType

    from lakehouse.tables.spec import Phi, column

    spec = TableSpec(
        name=f"silver.deid_cohort_{unique_module}",
        comment="Ten persons, two sexes.",
        columns=(
            column("pid", StringType(), "Person.", nullable=False, phi=Phi.IDENTIFIER),
            column("sex", StringType(), "Sex.", phi=Phi.QUASI),
            column("name", StringType(), "Name.", phi=Phi.NAME),
        ),
        keys=("pid",),
        person_key="pid",
    )
    ensure_table(spark, spec)
    rows = [(f"C{i}-{unique_module}", "MF"[i % 2], f"name{i}") for i in range(10)]
    spark.createDataFrame(rows, spec.schema).write.insertInto(spec.name)
    deid_job.refresh(spark, settings, specs=[spec])
    report = deid_job.check(spark, settings, specs=[spec])
    (r,) = report.views
    assert (r.k, r.classes, r.classes_below, r.passed) == (5, 2, 0, True)
    strict = settings.model_copy(
        update={"deid": settings.deid.model_copy(update={"k_threshold": 6})}
    )
    with pytest.raises(LakehouseError) as exc:
        deid_job.check(spark, strict, specs=[spec])
    assert exc.value.code is ErrorCode.DEID_K_ANONYMITY_BELOW


def test_analyst_reads_views_only_and_never_a_canary(
    spark: SparkSession, settings: Settings, world: World
) -> None:
    specs = world["specs"]
    catalog = {s.name: s for s in specs}
    catalog.update(deid_catalog(specs, load_deid_policy()))
    svc = AccessService(spark, SqlGuard(load_policy(), catalog), MemoryAuditLog(), b"a" * 32)
    ana = Principal("ana", "analyst", institutions=("H1",))
    pv, ev = world["views"][world["pat"].name], world["views"][world["enc"].name]
    queries = [
        f"SELECT * FROM {pv}",
        f"SELECT to_json(struct(*)) AS j FROM {ev}",
        f"SELECT p.*, e.* FROM {pv} p JOIN {ev} e ON p.patient_id = e.patient_id",
        f"WITH x AS (SELECT * FROM {ev}) SELECT * FROM {pv} WHERE patient_id IN "
        "(SELECT patient_id FROM x)",
    ]
    for sql in queries:
        text = json.dumps([r.asDict() for r in svc.query(ana, sql, purpose="research")],
                          default=str, ensure_ascii=False)  # fmt: skip
        for canary in CANARIES + list(world["ids"].values()):
            assert canary not in text, (sql, canary)
    with pytest.raises(LakehouseError) as exc:
        svc.query(ana, f"SELECT * FROM {world['pat'].name}", purpose="research")
    assert exc.value.code is ErrorCode.ACCESS_DENIED
    with pytest.raises(LakehouseError) as exc:
        svc.query(ana, "SELECT * FROM governance.person_keys", purpose="research")
    assert exc.value.code is ErrorCode.ACCESS_DENIED


def test_materialize_logs_versions_and_is_idempotent(
    spark: SparkSession, settings: Settings, world: World
) -> None:
    enc = world["enc"]
    first = deid_job.materialize(spark, settings, enc.name, specs=world["specs"])
    assert first.target_table == f"features.deid_silver_{enc.table_name}"
    assert (first.rows_written, first.rows_unkeyed) == (3, 0)
    again = deid_job.materialize(spark, settings, enc.name, specs=world["specs"])
    assert again.rows_written == 0
    assert spark.table(first.target_table).count() == 3
    logged = spark.table("ops.deid_snapshots").where(f"target_table = '{first.target_table}'")
    versions = sorted(r["target_version"] for r in logged.collect())
    assert versions[0] == first.target_version
    assert len(versions) == 2
    at = spark.read.option("versionAsOf", first.target_version).table(first.target_table)
    assert at.count() == 3


def test_every_project_spec_plans_a_view_spark_accepts(spark: SparkSession) -> None:
    """Each silver/gold TableSpec's view query analyzes in Spark (no job runs) and yields
    exactly the columns and types its guard spec declares."""
    from lakehouse.governance.deid.catalog import plans
    from lakehouse.governance.deid.views import deid_spec, select_sql
    from lakehouse.tables.governance.person_keys import PERSON_KEYS
    from lakehouse.tables.registry import all_specs

    policy = load_deid_policy()
    spark.createDataFrame([], PERSON_KEYS.schema).createOrReplaceTempView("deid_test_keys")
    for plan in plans([*all_specs(), PATIENT, ENCOUNTER, COUNTS], policy):
        if not plan.columns:
            continue
        spark.createDataFrame([], plan.source.schema).createOrReplaceTempView("deid_test_src")
        query = select_sql(plan, source="deid_test_src", person_table="deid_test_keys")
        got = [(f.name, f.dataType) for f in spark.sql(query).schema.fields]
        want = [(f.name, f.dataType) for f in deid_spec(plan).columns]
        assert got == want, plan.source.name


def test_check_command_prints_figures_and_exits_with_the_code(
    spark: SparkSession, settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import lakehouse.spark
    import lakehouse_cli.main as cli

    monkeypatch.setattr(cli, "_settings", lambda: settings)
    monkeypatch.setattr(lakehouse.spark, "build_spark", lambda cfg: spark)
    monkeypatch.setattr(deid_job, "all_specs", lambda: world["specs"])
    out = CliRunner().invoke(cli.app, ["deid", "check", world["pat"].name])
    assert out.exit_code == ErrorCode.DEID_K_ANONYMITY_BELOW.exit_status == 65
    assert "LH-DID-001" in out.output
    assert f"[FAIL] {world['views'][world['pat'].name]}: k=1" in out.output
