"""Spark Connect for notebooks through the guarding gateway: the gateway in a thread of the
test process, the real Spark Connect server in the run's one JVM behind it, over TLS with a
generated self-signed certificate, driven by PySpark's own Spark Connect client (what a
Jupyter notebook runs).

An analyst signed in with a session token reads a de-identified view with the DataFrame API
and with SQL (its own institution's rows only; the reads are audited with the token's user,
whatever user id the client claims), is refused ``silver.*`` with the catalogued error, and
everything that would run code on the server, read files, write or reach secrets is refused
before Spark sees it; a Spark failure comes back as its error class, never the data value it
quoted; a missing or forged token is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql.connect import functions as F  # this process also holds a classic session

from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal, SessionSigner
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.governance.tls import ca_file, server_tls
from lakehouse.settings import SecuritySettings, Settings, SparkConnectSettings
from serving.spark_connect import ConnectGateway
from tests.support.lab_view import POLICY, seed_lab_view
from tests.support.processes import free_port
from tests.support.spark_connect import remote_session

KEY = b"c" * 32
PASSWORD = "Correct-Horse-42"
H1_ROWS, H2_ROWS = 10, 3


@dataclass
class Gateway:
    port: int
    audit: MemoryAuditLog
    token: str  # the analyst's session token
    silver: str
    view: str
    ca: Path  # the self-signed certificate the client verifies the gateway with

    def session(self, token: str, extra: str = "") -> Any:
        auth = f";token={token}" if token else ""
        return remote_session(f"sc://localhost:{self.port}/;use_ssl=true{auth}{extra}", self.ca)


@pytest.fixture(scope="module")
def gw(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    import uuid

    u = uuid.uuid4().hex[:8]
    labs, view = seed_lab_view(spark, f"scn_labs_{u}", h1_rows=H1_ROWS, h2_rows=H2_ROWS)
    tmp = tmp_path_factory.mktemp("spark-connect")
    (tmp / "policy.yaml").write_text(POLICY)
    audit = MemoryAuditLog()
    guard = SqlGuard(load_policy(tmp / "policy.yaml"), {labs.name: labs, view.name: view})
    access = AccessService(spark, guard, audit, KEY)
    identity = IdentityService(
        tmp / "accounts.db", audit, SecuritySettings(), SessionSigner(KEY, 900)
    )
    identity.create_account(
        Principal("root", "admin"), "ana", PASSWORD, ("analyst",), institutions=("H1",)
    )
    token = identity.login("ana", PASSWORD)[0]
    lake = Settings(data_dir=tmp / "data")  # the self-signed certificate under its secrets
    cfg = SparkConnectSettings(port=free_port())
    with ConnectGateway(
        spark, cfg, tls=server_tls(lake), access=access, identity=identity
    ) as gateway:
        yield Gateway(gateway.port, audit, token, labs.name, view.name, ca_file(lake))
    spark.sql(f"DROP VIEW IF EXISTS {view.name}")


@pytest.fixture(scope="module")
def remote(gw: Gateway) -> Iterator[Any]:
    # The user id the client claims counts for nothing: the token's user reads.
    session = gw.session(gw.token, extra=";user_id=mallory")
    yield session
    session.stop()


def _reads(gw: Gateway, before: int) -> list[dict[str, Any]]:
    return [r for r in gw.audit.rows[before:] if r["action"] == "read"]


def test_analyst_reads_the_view_with_dataframes_and_the_read_is_audited(
    gw: Gateway, remote: Any
) -> None:
    before = len(gw.audit.rows)
    df = remote.table(gw.view)
    rows = df.filter(F.col("value") > 5.15).orderBy("lab_id").select("lab_id", "taken_year")
    got = [tuple(r) for r in rows.collect()]
    assert got == [(f"L{i:02d}", "2024") for i in range(2, H1_ROWS)]  # H1 only, filtered
    counts = df.groupBy("institution_code").agg(F.count("*").alias("n")).collect()
    assert [(r["institution_code"], r["n"]) for r in counts] == [("H1", H1_ROWS)]
    assert df.columns == ["person_token", "lab_id", "loinc", "value", "taken_year",
                          "institution_code"]  # fmt: skip
    reads = _reads(gw, before)
    assert {(r["actor"], r["role"], r["target"], r["purpose"]) for r in reads} == {
        ("ana", "analyst", gw.view, "analytics")
    }
    assert len(reads) == 2  # one per execution; the schema call reads no rows


def test_sql_through_the_gateway_is_guarded_and_time_travel_pins(gw: Gateway, remote: Any) -> None:
    df = remote.sql(f"SELECT institution_code, count(*) AS n FROM {gw.view} GROUP BY 1")
    assert [(r.institution_code, r.n) for r in df.collect()] == [("H1", H1_ROWS)]
    # The client keeps its own text; reusing the DataFrame guards it again.
    assert df.filter("n > 0").count() == 1
    pandas = remote.table(gw.view).select("lab_id", "value").toPandas()
    assert len(pandas) == H1_ROWS


def test_silver_is_refused_with_the_catalogued_error_and_audited(gw: Gateway, remote: Any) -> None:
    before = len(gw.audit.rows)
    with pytest.raises(PySparkException) as exc:
        remote.table(gw.silver).collect()
    assert "LH-SEC-006" in str(exc.value)
    with pytest.raises(PySparkException) as exc:
        remote.sql(f"SELECT count(*) FROM {gw.silver}").collect()
    assert "LH-SEC-006" in str(exc.value)
    denied = [r for r in gw.audit.rows[before:] if r["action"] == "access_denied"]
    assert [(r["actor"], r["reason"]) for r in denied] == [("ana", "LH-SEC-006")] * 2
    assert _reads(gw, before) == []


@pytest.mark.parametrize(
    "attempt",
    [
        "python_udf",
        "read_files",
        "write",
        "temp_view",
        "reflect",
        "subquery_in_expr",
        "set_conf",
        "ddl",
        "input_files",
        "persist_silver",
    ],
)
def test_what_would_escape_the_guard_is_refused(
    gw: Gateway, remote: Any, attempt: str, tmp_path: Path
) -> None:
    df = remote.table(gw.view)
    runs = {
        "python_udf": lambda: df.select(F.udf(lambda v: str(v))("value")).collect(),
        "read_files": lambda: remote.read.parquet(str(tmp_path)).collect(),
        "write": lambda: df.write.mode("overwrite").parquet(str(tmp_path / "out")),
        "temp_view": lambda: df.createOrReplaceTempView("leak"),
        "reflect": lambda: df.selectExpr("reflect('java.lang.System', 'getenv')").collect(),
        "subquery_in_expr": lambda: df.selectExpr(
            f"(SELECT max(patient_id) FROM {gw.silver}) AS p"
        ).collect(),
        "set_conf": lambda: remote.conf.set("spark.sql.legacy.allowUntypedScalaUDF", "true"),
        "ddl": lambda: remote.sql(f"DROP VIEW {gw.view}"),
        "input_files": lambda: df.inputFiles(),
        "persist_silver": lambda: remote.table(gw.silver).persist(),
    }
    before = len(gw.audit.rows)
    with pytest.raises(PySparkException) as exc:
        runs[attempt]()
    message = str(exc.value)
    assert "LH-SCN-002" in message or "LH-SEC-00" in message, message
    assert _reads(gw, before) == []
    assert not (tmp_path / "out").exists()


def test_secrets_are_not_readable_and_notebook_settings_are(gw: Gateway, remote: Any) -> None:
    assert remote.conf.get("spark.connect.authenticate.token", None) in (None, "")
    everything = remote.conf.getAll
    assert "spark.connect.authenticate.token" not in {k for k, v in everything.items() if v}
    remote.conf.set("spark.sql.shuffle.partitions", "3")
    assert remote.conf.get("spark.sql.shuffle.partitions") == "3"


def test_a_spark_failure_answers_its_error_class_and_no_value(
    gw: Gateway, remote: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    df = remote.table(gw.view)
    with pytest.raises(PySparkException) as exc:
        df.select((F.lit("zz-canary").cast("int") + F.col("value")).alias("x")).collect()
    assert "LH-SCN-003" in str(exc.value)
    assert "CAST_INVALID_INPUT" in str(exc.value)
    assert "zz-canary" not in str(exc.value)
    assert "zz-canary" not in capfd.readouterr().err


def test_a_missing_or_forged_token_is_refused(gw: Gateway) -> None:
    for token in ("", gw.token[:-4] + "AAAA"):
        session = gw.session(token)
        with pytest.raises(PySparkException) as exc:
            session.range(1).collect()
        assert "LH-SCN-001" in str(exc.value) or "UNAUTHENTICATED" in str(exc.value)


@pytest.mark.slow
def test_lakehouse_spark_connect_command(tmp_path: Path) -> None:
    """``lakehouse spark-connect`` in its own process, on the configured policy and accounts:
    an analyst signs in with a session token over TLS, and SIGTERM stops it."""
    from lakehouse.governance.identity import identity_service
    from tests.support.processes import create_analyst, lakehouse_env, listening_command, log_tail

    port = free_port()
    env = lakehouse_env(tmp_path / "data", SPARK_CONNECT__PORT=str(port))
    create_analyst(env, PASSWORD)
    log = tmp_path / "gateway.log"
    with listening_command("spark-connect", env, log, "Spark Connect at sc://") as ready:
        print(f"spark-connect ready in {ready:.1f} s")
        ca = tmp_path / "data" / "secrets" / "tls" / "server.crt"  # the generated one
        assert f";use_ssl=true (TLS; clients trust {ca})" in log_tail(log)
        lake = Settings(data_dir=tmp_path / "data")
        token = identity_service(lake, MemoryAuditLog()).login("ana", PASSWORD)[0]
        remote = remote_session(f"sc://localhost:{port}/;use_ssl=true;token={token}", ca)
        assert remote.range(3).count() == 3
        remote.stop()
