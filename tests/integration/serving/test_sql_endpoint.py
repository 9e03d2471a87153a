"""The SQL endpoint over the real HiveServer2 protocol: the gateway in a thread of the test
process on the run's one Spark session, over TLS with a generated self-signed certificate,
reached by PyHive (Thrift + SASL PLAIN on a verifying TLS socket) and by beeline (the Hive
JDBC driver BI tools use, ``ssl=true`` with a JKS truststore).

An analyst reads a de-identified view (its own institution's rows, complete across several
fetch pages), is refused ``silver.*`` with the catalogued error, and a wrong password is
refused; every read and refusal is on the audit record; the catalog calls list only what the
analyst's policy lets it read; a result that reaches ``max_rows`` stops there and says so.
A plain-TCP client and a TLS 1.1 client are refused before any sign-in.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark
import pytest
from pyhive import hive
from pyspark.sql import SparkSession
from TCLIService import ttypes as tt
from thrift.transport.TTransport import TTransportException

from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal, SessionSigner
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.governance.tls import ca_file, server_context
from lakehouse.settings import SecuritySettings, Settings, SqlEndpointSettings
from serving.sql_endpoint import SqlGateway
from tests.support.hive_tls import connect_tls, jdbc_url, truststore
from tests.support.lab_view import POLICY, seed_lab_view
from tests.support.processes import free_port

KEY = b"q" * 32
PASSWORD = "Correct-Horse-42"
BEELINE = Path(pyspark.__file__).parent / "bin" / "beeline"  # the Hive JDBC driver's CLI
H1_ROWS, H2_ROWS = 10, 3
PAGE, MAX_ROWS = 4, 12  # the analyst's 10 rows take three pages; 100 rows are cut at 12


@dataclass
class Endpoint:
    port: int
    audit: MemoryAuditLog
    silver: str
    view: str
    ca: Path  # the self-signed certificate clients verify the gateway with


@pytest.fixture(scope="module")
def endpoint(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, unique_module: str
) -> Iterator[Endpoint]:
    u = unique_module
    labs, view = seed_lab_view(spark, f"sqlep_labs_{u}", h1_rows=H1_ROWS, h2_rows=H2_ROWS)
    tmp = tmp_path_factory.mktemp("sql-endpoint")
    (tmp / "policy.yaml").write_text(POLICY)
    catalog = {labs.name: labs, view.name: view}
    audit = MemoryAuditLog()
    access = AccessService(spark, SqlGuard(load_policy(tmp / "policy.yaml"), catalog), audit, KEY)
    identity = IdentityService(
        tmp / "accounts.db", audit, SecuritySettings(), SessionSigner(KEY, 900)
    )
    identity.create_account(
        Principal("root", "admin"), "ana", PASSWORD, ("analyst",), institutions=("H1",)
    )
    cfg = SqlEndpointSettings(port=free_port(), page_rows=PAGE, max_rows=MAX_ROWS)
    lake = Settings(data_dir=tmp / "data")  # the self-signed certificate under its secrets
    tls = server_context(lake)
    with SqlGateway(spark, cfg, tls=tls, access=access, identity=identity) as gateway:
        yield Endpoint(gateway.port, audit, labs.name, view.name, ca_file(lake))
    spark.sql(f"DROP VIEW IF EXISTS {view.name}")


@pytest.fixture(scope="module")
def unique_module() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


def _connect(ep: Endpoint, password: str = PASSWORD) -> Any:
    return connect_tls("127.0.0.1", ep.port, "ana", password, cafile=ep.ca)


def test_the_connection_is_tls_1_2_or_newer_verified_against_the_ca(ep: Endpoint) -> None:
    ctx = ssl.create_default_context(cafile=str(ep.ca))
    with (
        socket.create_connection(("127.0.0.1", ep.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with (
        socket.create_connection(("127.0.0.1", ep.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_plain_tcp_client_is_refused_before_any_sign_in(ep: Endpoint) -> None:
    before = len(ep.audit.rows)
    with pytest.raises(TTransportException):
        hive.connect(
            host="127.0.0.1", port=ep.port, username="ana", password=PASSWORD, auth="CUSTOM"
        )
    assert ep.audit.rows[before:] == []  # the password was never read: no sign-in at all


def test_a_tls_1_1_client_is_refused(ep: Endpoint) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets this OpenSSL offer TLS 1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", ep.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError) as exc,
    ):
        ctx.wrap_socket(raw)
    assert exc.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"  # the gateway's refusal


def test_analyst_reads_the_view_across_pages_and_the_read_is_audited(ep: Endpoint) -> None:
    before = len(ep.audit.rows)
    with _connect(ep) as conn:
        cur = conn.cursor()
        cur.arraysize = 3  # smaller than the gateway's page: four fetches
        cur.execute(f"SELECT lab_id, value, taken_year FROM {ep.view} ORDER BY lab_id")
        rows = cur.fetchall()
        described = [(d[0], d[1]) for d in cur.description]
    assert [r[0] for r in rows] == [f"L{i:02d}" for i in range(H1_ROWS)]  # H1 only
    assert rows[3] == ("L03", pytest.approx(5.3), "2024")
    assert described == [("lab_id", "STRING_TYPE"), ("value", "DOUBLE_TYPE"),
                         ("taken_year", "STRING_TYPE")]  # fmt: skip
    reads = [r for r in ep.audit.rows[before:] if r["action"] == "read"]
    assert [(r["actor"], r["role"], r["target"], r["row_count"]) for r in reads] == [
        ("ana", "analyst", ep.view, H1_ROWS)
    ]
    assert reads[0]["purpose"] == "analytics"


def test_silver_is_refused_with_the_catalogued_error_and_audited(ep: Endpoint) -> None:
    before = len(ep.audit.rows)
    with _connect(ep) as conn, pytest.raises(hive.OperationalError) as exc:
        conn.cursor().execute(f"SELECT lab_id FROM {ep.silver}")
    status = exc.value.args[0].status
    assert status.errorMessage.startswith("[LH-SEC-006]")
    assert (status.sqlState, status.errorCode) == ("42000", 403)
    denied = [r for r in ep.audit.rows[before:] if r["action"] == "access_denied"]
    assert [(r["actor"], r["reason"]) for r in denied] == [("ana", "LH-SEC-006")]


def test_a_spark_failure_answers_its_error_class_and_logs_no_value(
    ep: Endpoint, capfd: pytest.CaptureFixture[str]
) -> None:
    with _connect(ep) as conn, pytest.raises(hive.OperationalError) as exc:
        conn.cursor().execute(f"SELECT CAST('zz-canary' AS INT) + value FROM {ep.view}")
    message = exc.value.args[0].status.errorMessage
    assert message == "[LH-SQL-005] Spark could not run the statement (CAST_INVALID_INPUT)."
    assert "zz-canary" not in capfd.readouterr().err  # PySpark's query-context log is off
    assert ep.audit.rows[-1]["outcome"] == "failed"


def test_wrong_password_is_refused_and_audited(ep: Endpoint) -> None:
    before = len(ep.audit.rows)
    with pytest.raises(TTransportException) as exc:
        _connect(ep, "Wrong-Pass-42")
    assert "LH-SEC-001" in str(exc.value)
    failed = [r for r in ep.audit.rows[before:] if r["action"] == "login_failure"]
    assert [r["actor"] for r in failed] == ["ana"]


def test_result_stops_at_max_rows_and_says_so(ep: Endpoint) -> None:
    before = len(ep.audit.rows)
    with _connect(ep) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT a.lab_id FROM {ep.view} a CROSS JOIN {ep.view} b")
        rows = cur.fetchall()
        logs = cur.fetch_logs()
    assert len(rows) == MAX_ROWS  # of 100
    assert any(line.startswith("[LH-SQL-004]") for line in logs)
    reads = [r for r in ep.audit.rows[before:] if r["action"] == "read"]
    assert [r["row_count"] for r in reads] == [MAX_ROWS]  # the rows served, exactly


def _fetch_all(conn: Any, handle: Any) -> list[tuple[Any, ...]]:
    client, out = conn._client, []
    while True:
        resp = client.FetchResults(
            tt.TFetchResultsReq(operationHandle=handle, orientation=0, maxRows=100)
        )
        assert resp.status.statusCode == tt.TStatusCode.SUCCESS_STATUS
        cols = [next(v for v in vars(c).values() if v is not None).values
                for c in resp.results.columns]  # fmt: skip
        batch = list(zip(*cols, strict=True))
        if not batch:
            return out
        out.extend(batch)


def test_catalog_calls_list_only_what_the_policy_lets_the_analyst_read(ep: Endpoint) -> None:
    with _connect(ep) as conn:
        client, session = conn._client, conn.sessionHandle
        schemas = client.GetSchemas(tt.TGetSchemasReq(sessionHandle=session))
        tables = client.GetTables(tt.TGetTablesReq(sessionHandle=session, schemaName="%"))
        _, name = ep.view.split(".")
        columns = client.GetColumns(
            tt.TGetColumnsReq(sessionHandle=session, schemaName="deid", tableName=name)
        )
        listed_schemas = _fetch_all(conn, schemas.operationHandle)
        listed = _fetch_all(conn, tables.operationHandle)
        cols = _fetch_all(conn, columns.operationHandle)
    assert ("deid", "") in listed_schemas
    assert all(s == "deid" for s, _ in listed_schemas)  # no silver, audit, governance
    assert ("deid", name, "VIEW") in [(t[1], t[2], t[3]) for t in listed]
    assert not any(t[1] == "silver" for t in listed)
    assert [(c[3], c[5]) for c in cols] == [
        ("person_token", "STRING"), ("lab_id", "STRING"), ("loinc", "STRING"),
        ("value", "DOUBLE"), ("taken_year", "STRING"), ("institution_code", "STRING"),
    ]  # fmt: skip


def test_beeline_through_the_hive_jdbc_driver_over_tls(ep: Endpoint, tmp_path: Path) -> None:
    store = truststore(ep.ca, tmp_path)
    started = time.perf_counter()
    out = subprocess.run(
        [str(BEELINE), "-u", jdbc_url("127.0.0.1", ep.port, store), "-n", "ana",
         "-p", PASSWORD, "--outputformat=csv2", "--silent=true", "--force=true",
         "-e", f"SELECT lab_id, value FROM {ep.view} ORDER BY lab_id;"
               f"SELECT lab_id FROM {ep.silver};"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert lines[0] == "lab_id,value", out.stdout + out.stderr[-3000:]
    assert [ln.split(",")[0] for ln in lines[1:]] == [f"L{i:02d}" for i in range(H1_ROWS)]
    assert "[LH-SEC-006]" in out.stderr, out.stderr[-3000:]
    print(f"beeline: {seconds:.1f} s")


@pytest.fixture
def ep(endpoint: Endpoint) -> Endpoint:
    return endpoint


@pytest.mark.slow
def test_lakehouse_sql_endpoint_command(tmp_path: Path) -> None:
    """``lakehouse sql-endpoint`` in its own process, on the configured policy and accounts:
    an analyst signs in over TLS (JDBC URL and CA file printed), and SIGTERM stops it."""
    from tests.support.processes import create_analyst, lakehouse_env, listening_command, log_tail

    port = free_port()
    env = lakehouse_env(tmp_path / "data", SQL_ENDPOINT__PORT=str(port))
    create_analyst(env, PASSWORD)
    log = tmp_path / "endpoint.log"
    with listening_command("sql-endpoint", env, log, "SQL endpoint at jdbc:hive2://") as ready:
        ca = tmp_path / "data" / "secrets" / "tls" / "server.crt"  # the generated one
        assert f"ssl=true (TLS; clients trust {ca})" in log_tail(log)
        with connect_tls("127.0.0.1", port, "ana", PASSWORD, cafile=ca) as conn:
            cur = conn.cursor()
            cur.execute("SELECT 1 AS one")
            assert cur.fetchall() == [(1,)]
        print(f"sql-endpoint ready in {ready:.1f} s")
