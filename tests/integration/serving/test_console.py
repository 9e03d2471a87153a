"""The operations console over real HTTP on the test run's Spark session: small
``ops.job_runs``-, ``dq.results``- and ``audit.events``-shaped tables under unique names, a
real backup of one of them, a real standby cycle shipping it, then every panel's JSON, the
role checks (clinicians refused, auditors without the data-quality grant), the cache, the
audit events, and ``/metrics`` parsed by prometheus_client's parser. The page itself in
headless Chromium, with a real MLflow registry, is the slow test at the end."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession

from lakehouse.backup import take_backup
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal, SessionSigner
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.governance.tls import client_context
from lakehouse.settings import (
    ConsoleSettings,
    MlflowSettings,
    SecuritySettings,
    ServeSettings,
    Settings,
    StandbySettings,
)
from lakehouse.standby import Shipper
from lakehouse.tables.audit.events import AUDIT_EVENTS
from lakehouse.tables.dq.results import RESULTS
from lakehouse.tables.ops.runs import JOB_RUNS
from serving.app import create_app, tls_files
from serving.assistant.lexicon import Lexicon
from serving.console import PANELS, Console, ConsoleTables
from serving.history import ChatHistory
from tests.integration.serving.conftest import _running

KEY = b"c" * 32
PASSWORD = "Correct-Horse-42"
#: Values only the audit log holds: they must never reach a console answer or a metric.
SECRET_REF = "PATIENTREF0123456789"
SECRET_ACTOR = "dr_glass_actor"


@dataclass
class World:
    tables: ConsoleTables
    cfg: Settings
    audit: MemoryAuditLog
    identity: IdentityService
    access: AccessService
    totp: dict[str, str]
    metrics_token: str
    tmp: Path


def _row(spec: Any, **values: Any) -> tuple[Any, ...]:
    return tuple(values.get(c) for c in spec.column_names)


def _seed(spark: SparkSession, t: ConsoleTables) -> None:
    now = datetime.now(UTC)  # instants, as lakehouse.runs records them

    def run(
        job: str, status: str, hours: float, counts: dict[str, int], code: str | None = None
    ) -> tuple[Any, ...]:
        return _row(
            JOB_RUNS, run_id=str(uuid.uuid4()), job=job, status=status,
            started_at=now - timedelta(hours=hours),
            finished_at=now - timedelta(hours=hours) + timedelta(seconds=30),
            duration_s=30.0, counts=counts, error_code=code, lakehouse_version="test",
            spark_master="local[2]",
        )  # fmt: skip

    runs = [
        run("ingest", "succeeded", 5, {"records_seen": 100, "records_landed": 98}),
        run("ingest", "succeeded", 2, {"records_seen": 120, "records_landed": 117,
                                       "records_quarantined": 3}),
        run("silver", "failed", 1, {}, "LH-SLV-001"),
        run("backup", "succeeded", 30, {"tables": 40}),
        run("restore", "succeeded", 20, {"tables": 40}),
        run("ingest", "succeeded", 24 * 30, {"records_seen": 1}),  # outside the window
    ]  # fmt: skip
    for schema in ("ops", "dq", "audit"):
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    spark.createDataFrame(runs[:-1], JOB_RUNS.schema).write.format("delta").saveAsTable(t.job_runs)
    spark.createDataFrame(runs[-1:], JOB_RUNS.schema).write.format("delta").mode(
        "append"
    ).saveAsTable(t.job_runs)  # a second version

    def rule(run_id: str, rid: str, status: str, severity: str, hours: float) -> tuple[Any, ...]:
        failing = {"pass": 0, "fail": 7, "error": None}[status]
        return _row(
            RESULTS, run_id=run_id, rule_id=rid, suite="rules", layer="silver",
            severity=severity, table_name="silver.encounter", rows_checked=100,
            rows_failing=failing, percent_failing=None if failing is None else float(failing),
            threshold=1.0, status=status, executed_at=now - timedelta(hours=hours),
        )  # fmt: skip

    dq = [
        rule("dq-old", "SLV-ENC-001", "pass", "error", 30),
        rule("dq-old", "SLV-ENC-002", "fail", "warning", 30),
        rule("dq-new", "SLV-ENC-001", "pass", "error", 3),
        rule("dq-new", "SLV-ENC-002", "fail", "warning", 3),
        rule("dq-new", "SLV-ENC-003", "fail", "fatal", 3),
        rule("dq-new", "SLV-ENC-004", "error", "error", 3),
    ]
    spark.createDataFrame(dq, RESULTS.schema).write.format("delta").saveAsTable(t.dq_results)

    def event(seq: int, action: str, hours: float, **extra: Any) -> tuple[Any, ...]:
        return _row(
            AUDIT_EVENTS, seq=seq, event_id=str(uuid.uuid4()), ts=now - timedelta(hours=hours),
            action=action, outcome="allowed", actor=SECRET_ACTOR, role="clinician",
            break_glass=action == "break_glass", hash_alg="sha256", prev_hash="0" * 64,
            hash="0" * 64, **extra,
        )  # fmt: skip

    # Hours ago small enough to stay on today's hospital date in most zones is not needed:
    # the test compares against the days the console itself reports.
    events = [
        event(1, "break_glass", 0.01, patient_ref=SECRET_REF, reason="emergency"),
        event(2, "break_glass", 0.02, patient_ref=SECRET_REF, reason="emergency"),
        event(3, "access_denied", 0.03, patient_ref=SECRET_REF),
        event(4, "read", 0.04, patient_ref=SECRET_REF),
        event(5, "break_glass", 24 * 60, patient_ref=SECRET_REF),  # outside the window
    ]
    spark.createDataFrame(events, AUDIT_EVENTS.schema).write.format("delta").saveAsTable(
        t.audit_events
    )


@pytest.fixture(scope="module")
def world(
    spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> World:
    u = uuid.uuid4().hex[:8]
    t = ConsoleTables(
        job_runs=f"ops.job_runs_con_{u}",
        dq_results=f"dq.results_con_{u}",
        audit_events=f"audit.events_con_{u}",
    )
    _seed(spark, t)
    tmp = tmp_path_factory.mktemp("console")
    token = uuid.uuid4().hex
    (tmp / "metrics.token").write_text(token + "\n")
    cfg = settings.model_copy(
        update={
            "serve": ServeSettings(),
            "console": ConsoleSettings(
                schemas=["ops", "dq", "audit"],
                cache_ttl_s=300,
                metrics_token_file=tmp / "metrics.token",
                probe_timeout_s=0.5,
            ),
            "backup": settings.backup.model_copy(update={"destination": tmp / "backups"}),
            "standby": StandbySettings(target=tmp / "standby", include=[t.job_runs]),
            "mlflow": MlflowSettings(tracking_uri="http://127.0.0.1:9"),  # nothing answers
        }
    )
    take_backup(spark, cfg, tables=[t.job_runs], include_state=False)
    with Shipper(cfg) as shipper:
        shipper.run(cycles=1)
    audit = MemoryAuditLog()
    identity = IdentityService(
        tmp / "accounts.db", audit, SecuritySettings(), SessionSigner(KEY, 900)
    )
    root = Principal("root", "admin")
    totp = {}
    for name, role in (("ops_admin", "admin"), ("ops_auditor", "auditor")):
        secret = identity.create_account(root, name, PASSWORD, (role,))
        assert secret is not None
        totp[name] = secret
    identity.create_account(
        root, "dr_a", PASSWORD, ("clinician",), department="A", institutions=("H1",)
    )
    catalog = {t.audit_events: dataclasses.replace(AUDIT_EVENTS, name=t.audit_events)}
    access = AccessService(spark, SqlGuard(load_policy(), catalog), audit, KEY)
    return World(t, cfg, audit, identity, access, totp, token, tmp)


@dataclass
class Running:
    url: str
    world: World
    verify: Any

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, verify=self.verify)

    def login(self, user: str) -> str:
        body: dict[str, str] = {"username": user, "password": PASSWORD}
        if user in self.world.totp:
            body["totp"] = pyotp.TOTP(self.world.totp[user]).now()
        with self.client() as c:
            r = c.post("/api/login", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


def _serve(spark: SparkSession, world: World, cfg: Settings) -> Generator[Running, None, None]:
    app = create_app(
        spark,
        cfg,
        identity=world.identity,
        access=world.access,
        lexicon=Lexicon(),
        history=ChatHistory(world.tmp / f"history-{uuid.uuid4().hex[:6]}.db", world.audit),
        console_tables=world.tables,
    )
    tls = tls_files(cfg)
    assert tls is not None
    with _running(app, tls) as url:
        yield Running(url, world, client_context(cfg))


@pytest.fixture(scope="module")
def console(spark: SparkSession, world: World) -> Iterator[Running]:
    yield from _serve(spark, world, world.cfg)


@pytest.fixture(scope="module")
def admin(console: Running) -> str:
    return console.login("ops_admin")


def _panels(console: Running, token: str) -> dict[str, dict[str, Any]]:
    with console.client(token) as c:
        out = {}
        for name in PANELS:
            r = c.get(f"/api/console/{name}")
            assert r.status_code == 200, (name, r.text)
            assert SECRET_REF not in r.text
            assert SECRET_ACTOR not in r.text
            out[name] = r.json()
    return out


def test_admin_sees_every_panel_from_its_source(console: Running, admin: str) -> None:
    w = console.world
    reads_before = len(w.audit.rows)
    p = _panels(console, admin)
    for name in ("runs", "tables", "quality", "backups", "standby", "alerts", "health"):
        assert p[name]["status"] == "ok", p[name]

    jobs = {j["job"]: j for j in p["runs"]["data"]["jobs"]}
    assert jobs["ingest"]["runs"] == 2  # the 30-day-old run is outside runs_days
    assert jobs["ingest"]["last"]["counts"] == {
        "records_landed": 117, "records_quarantined": 3, "records_seen": 120,
    }  # fmt: skip
    assert jobs["silver"]["failed"] == 1
    assert jobs["silver"]["last"]["error_code"] == "LH-SLV-001"
    assert len(p["runs"]["data"]["recent"]) == 6

    listed = {t["table"]: t for t in p["tables"]["data"]["tables"]}
    assert listed[w.tables.job_runs]["version"] == 1
    assert listed[w.tables.job_runs]["size_bytes"] > 0
    assert listed[w.tables.job_runs]["files"] >= 2  # one commit per version, a file or more each
    assert listed[w.tables.dq_results]["version"] == 0

    q = p["quality"]["data"]
    assert [r["run_id"] for r in q["runs"]] == ["dq-new", "dq-old"]
    assert (q["runs"][0]["pass"], q["runs"][0]["fail"], q["runs"][0]["error"]) == (1, 2, 1)
    # fatal first, then error, then warning
    assert [f["rule_id"] for f in q["failing"]] == ["SLV-ENC-003", "SLV-ENC-004", "SLV-ENC-002"]

    b = p["backups"]["data"]
    assert b["count"] == 1
    assert b["backups"][0]["kind"] == "full"
    assert b["backups"][0]["tables"] == 1
    assert b["backups"][0]["bytes"] > 0
    assert b["last_restore"]["status"] == "succeeded"
    assert b["last_backup_run"]["status"] == "succeeded"

    s = p["standby"]["data"]
    assert s["configured"]
    assert "raw" not in s
    assert [t["table"] for t in s["tables"]] == [w.tables.job_runs]
    assert s["tables"][0]["standby_version"] == 1

    assert p["models"]["status"] == "error"
    assert p["models"]["code"] == "LH-CON-001"

    days = p["alerts"]["data"]["per_day"]
    assert sum(d["break_glass"] for d in days) == 2  # the 60-day-old one is outside
    assert sum(d["access_denied"] for d in days) == 1
    assert all(set(d) <= {"day", "break_glass", "access_denied", "lockout"} | {
        f"{a}_{e}" for a in ("break_glass", "access_denied", "lockout") for e in ("first", "last")
    } for d in days)  # fmt: skip

    health = {c["component"]: c["up"] for c in p["health"]["data"]["components"]}
    assert health == {"assistant": True, "spark": True, "mlflow": False, "llm": None}

    # Every answer is on the record: one read per panel, purpose operations.
    new = w.audit.rows[reads_before:]
    reads = [r for r in new if r["action"] == "read" and r["purpose"] == "operations"]
    assert sorted(r["detail"] for r in reads) == sorted(f"console:{n}" for n in PANELS)
    runs_event = next(r for r in reads if r["detail"] == "console:runs")
    assert runs_event["actor"] == "ops_admin"
    assert runs_event["target"] == w.tables.job_runs
    assert runs_event["row_count"] == len(jobs) + 6


def test_panels_are_cached_for_the_ttl(console: Running, admin: str) -> None:
    with console.client(admin) as c:
        first = c.get("/api/console/runs").json()
        time.sleep(0.05)
        second = c.get("/api/console/runs").json()
    assert first["read_at"] == second["read_at"]  # no second read of the table
    assert second["age_s"] > 0


def test_an_expired_panel_is_answered_while_it_is_read_again(
    spark: SparkSession, world: World
) -> None:
    now = [1000.0]
    c = Console(
        spark, world.cfg, MemoryAuditLog(), load_policy(), world.tables, clock=lambda: now[0]
    )
    first = c.figure("standby")
    now[0] += world.cfg.console.cache_ttl_s + 1
    stale = c.figure("standby")  # answered at once from the cache; a refresh starts
    assert stale["read_at"] == first["read_at"]
    assert stale["age_s"] > world.cfg.console.cache_ttl_s
    deadline = time.monotonic() + 30
    while c.reads["standby"] < 2 or c._refreshing:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    fresh = c.figure("standby")
    assert fresh["read_at"] > first["read_at"]
    assert fresh["age_s"] == 0
    assert c.reads["standby"] == 2


def test_clinician_is_refused_and_the_refusal_is_audited(console: Running) -> None:
    token = console.login("dr_a")
    with console.client(token) as c:
        for path in ("/api/console", "/api/console/runs", "/api/console/alerts", "/metrics"):
            r = c.get(path)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["code"] == "LH-SEC-006"
    denied = [r for r in console.world.audit.rows if r["action"] == "access_denied"]
    assert any(r["actor"] == "dr_a" and r["purpose"] == "operations" for r in denied)


def test_auditor_sees_alerts_but_not_data_quality(console: Running) -> None:
    token = console.login("ops_auditor")
    with console.client(token) as c:
        index = c.get("/api/console").json()
        allowed = {p["panel"]: p["allowed"] for p in index["panels"]}
        assert allowed["alerts"]
        assert allowed["runs"]
        assert not allowed["quality"]
        assert c.get("/api/console/alerts").json()["status"] == "ok"
        r = c.get("/api/console/quality")
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "LH-SEC-006"
        r = c.get("/metrics")  # metrics are the admins' and the scraper's
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "LH-CON-002"


def test_auditors_review_break_glass_events_through_the_guarded_path(console: Running) -> None:
    w = console.world
    token = console.login("ops_auditor")
    with console.client(token) as c:
        assert c.get("/api/console").json()["break_glass_events"] is True
        r = c.get("/api/console/break-glass")
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert len(events) == 3  # every break-glass event, newest first, at most 50
    assert {e["patient_ref"] for e in events} == {SECRET_REF}  # the keyed pseudonym
    assert events[0]["actor"] == SECRET_ACTOR
    assert events[0]["ts"] >= events[1]["ts"] >= events[2]["ts"]
    review = [r for r in w.audit.rows if r["purpose"] == "audit review"]
    assert review[-1]["actor"] == "ops_auditor"
    assert review[-1]["target"] == w.tables.audit_events
    assert review[-1]["row_count"] == 3
    for user in ("ops_admin", "dr_a"):  # admins see the counts only; clinicians nothing
        with console.client(console.login(user)) as c:
            r = c.get("/api/console/break-glass")
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "LH-SEC-006"


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(fams: dict[str, Any], name: str, **labels: str) -> float:
    family = name.removesuffix("_total")
    found = [
        s.value
        for s in fams[family].samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, fams[family].samples)
    return float(found[0])


def test_metrics_exposition_parses_and_carries_the_panels(console: Running, admin: str) -> None:
    w = console.world
    with console.client(w.metrics_token) as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert SECRET_REF not in r.text
    assert SECRET_ACTOR not in r.text
    fams = _families(r.text)
    expected = {
        "lakehouse_console_panel_up", "lakehouse_job_runs", "lakehouse_job_last_run_records",
        "lakehouse_table_version", "lakehouse_table_size_bytes", "lakehouse_dq_rules",
        "lakehouse_backups", "lakehouse_restore_last_succeeded", "lakehouse_standby_configured",
        "lakehouse_standby_lag_seconds", "lakehouse_standby_ship_lag_seconds",
        "lakehouse_audit_alerts", "lakehouse_component_up", "lakehouse_build_info",
        "lakehouse_registered_models",
    }  # fmt: skip
    assert expected <= set(fams)
    assert _value(fams, "lakehouse_job_runs", job="ingest", status="succeeded") == 2
    assert _value(fams, "lakehouse_job_last_run_succeeded", job="silver") == 0
    assert (
        _value(fams, "lakehouse_job_last_run_records", job="ingest", count="records_quarantined")
        == 3
    )
    assert _value(fams, "lakehouse_table_version", table=w.tables.job_runs) == 1
    assert _value(fams, "lakehouse_dq_rules", status="fail") == 2
    assert _value(fams, "lakehouse_backups", kind="full") == 1
    assert _value(fams, "lakehouse_restore_last_succeeded") == 1
    assert _value(fams, "lakehouse_standby_configured") == 1
    assert _value(fams, "lakehouse_standby_version", table=w.tables.job_runs, site="standby") == 1
    window = f"{w.cfg.console.alert_days}d"
    assert _value(fams, "lakehouse_audit_alerts", action="break_glass", window=window) == 2
    assert _value(fams, "lakehouse_component_up", component="mlflow") == 0
    assert _value(fams, "lakehouse_console_panel_up", panel="models") == 0
    scrape = [r for r in w.audit.rows if r["detail"] == "console:metrics"]
    assert scrape
    assert scrape[-1]["actor"] == "prometheus"

    with console.client(admin) as c:  # a signed-in admin may read it too
        assert c.get("/metrics").status_code == 200
    for token in (None, "not-the-token"):
        with console.client(token) as c:
            r = c.get("/metrics")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "LH-CON-002"


def test_openapi_documents_the_console(console: Running) -> None:
    from serving.openapi import openapi_schemas

    paths = openapi_schemas()["assistant"]["paths"]
    assert {f"/api/console/{p}" for p in PANELS} | {"/api/console", "/metrics"} <= set(paths)
    assert json.dumps(paths["/api/console/runs"]).count("LH-SEC-006") == 1


# --- the page in headless Chromium (slow: it starts an MLflow server) ----------------
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
def test_console_page_in_chromium(spark: SparkSession, world: World, mlflow_server: Any) -> None:
    from lakehouse.tracking import tracking_uri

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: run `make browser` (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
    import mlflow

    from tests.integration.serving.test_chat_page import FLAGS

    uri = tracking_uri(mlflow_server.settings)
    model = f"console_model_{uuid.uuid4().hex[:6]}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(model)
    run = client.create_run("0")  # a version's source must lie in a run's artifacts
    for _ in range(2):
        client.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(model, "champion", "1")
    cfg = world.cfg.model_copy(
        update={
            "mlflow": MlflowSettings(tracking_uri=uri),
            "console": world.cfg.console.model_copy(update={"cache_ttl_s": 0}),
        }
    )
    serving = _serve(spark, world, cfg)
    running = next(serving)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
            try:
                _page_checks(sync_api, browser, running, world, model)
            finally:
                browser.close()
    finally:
        serving.close()


def _page_checks(sync_api: Any, browser: Any, running: Running, w: World, model: str) -> None:
    expect = sync_api.expect
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
    first = page.goto(running.url + "/console")
    assert first is not None
    assert first.status == 200
    assert "script-src 'self'" in first.headers["content-security-policy"]

    # An admin signs in (password and one-time code) and every panel fills from its source.
    expect(page.locator("#login-view")).to_be_visible()
    page.fill("#username", "ops_admin")
    page.fill("#password", PASSWORD)
    page.fill("#totp", pyotp.TOTP(w.totp["ops_admin"]).now())
    page.click("#sign-in")
    expect(page.locator("#console-view")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("ops_admin (admin)")
    for panel in PANELS:
        expect(page.locator(f"#panel-{panel}")).to_have_attribute("data-loaded", "true")
    expect(page.locator("#panel-runs table.jobs")).to_contain_text("ingest")
    expect(page.locator("#panel-runs table.jobs")).to_contain_text("records_quarantined 3")
    expect(page.locator("#panel-runs table.jobs")).to_contain_text("LH-SLV-001")
    expect(page.locator("#panel-tables table.tables")).to_contain_text(w.tables.job_runs)
    expect(page.locator("#panel-quality table.failing")).to_contain_text("SLV-ENC-003")
    expect(page.locator("#panel-backups table.backups")).to_contain_text("full")
    expect(page.locator("#panel-backups .restore")).to_contain_text("succeeded")
    expect(page.locator("#panel-standby table.standby-tables")).to_contain_text(w.tables.job_runs)
    models = page.locator("#panel-models table.models tr", has_text=model)
    expect(models).to_have_count(1)
    expect(models.locator("td").nth(1)).to_have_text("2")  # latest version
    expect(models.locator("td").nth(2)).to_have_text("1")  # the champion
    expect(page.locator("#panel-alerts table.alerts")).to_be_visible()
    health = page.locator("#panel-health table.health")
    expect(health.locator("tr", has_text="mlflow").locator("td").nth(1)).to_have_text("up")
    content = page.content()
    assert SECRET_REF not in content
    assert SECRET_ACTOR not in content

    # A clinician is refused with the catalogued code.
    page.click("#sign-out")
    expect(page.locator("#login-view")).to_be_visible()
    page.fill("#username", "dr_a")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#refused-view")).to_be_visible()
    expect(page.locator("#refused-code")).to_have_text("LH-SEC-006")
    expect(page.locator("#console-view")).to_be_hidden()

    # An auditor sees the break-glass events themselves, and no data-quality panel.
    page.click("#sign-out")
    page.fill("#username", "ops_auditor")
    page.fill("#password", PASSWORD)
    page.fill("#totp", pyotp.TOTP(w.totp["ops_auditor"]).now())
    page.click("#sign-in")
    expect(page.locator("#console-view")).to_be_visible()
    expect(page.locator("#panel-breakglass table.breakglass tr")).to_have_count(4)  # + header
    expect(page.locator("#panel-breakglass")).to_contain_text(SECRET_REF)
    expect(page.locator("#panel-quality")).to_contain_text("Not available for your role")
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert errors == []
    context.close()
