"""The SQL endpoint's pieces without Spark: SASL PLAIN negotiation and framing over a real
socket pair, columnar row sets with null bitmaps, JDBC catalog patterns, error statuses,
the listener's TLS setting."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import struct
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql.types import (
    DateType,
    DecimalType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from TCLIService import ttypes as tt

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.sessions import Principal
from lakehouse.settings import Settings, SqlEndpointSettings
from serving.sql_endpoint.gateway import (
    V6,
    V10,
    Connection,
    SqlGateway,
    _like,
    listener_tls,
    status_of,
)
from serving.sql_endpoint.rowsets import row_set, table_schema
from serving.sql_endpoint.sasl import BAD, COMPLETE, OK, START, SaslServerTransport


def _msg(status: int, payload: bytes) -> bytes:
    return struct.pack(">BI", status, len(payload)) + payload


def _read_msg(sock: socket.socket) -> tuple[int, bytes]:
    head = sock.recv(5, socket.MSG_WAITALL)
    return head[0], sock.recv(struct.unpack(">I", head[1:])[0], socket.MSG_WAITALL)


def _server(sock: socket.socket, out: dict[str, Any]) -> None:
    def check(user: str, password: str) -> str:
        if password != "right":
            raise error(ErrorCode.AUTH_FAILED)
        return user

    transport = SaslServerTransport(sock)
    try:
        out["who"] = transport.negotiate(check)
        out["read"] = transport.read(5) + transport.read(100)
        transport.write(b"pong")
        transport.flush()
    except LakehouseError as exc:
        out["error"] = exc.code
    finally:
        transport.close()


def _run(client_bytes: bytes, *, then: bytes = b"") -> tuple[dict[str, Any], socket.socket]:
    server, client = socket.socketpair()
    out: dict[str, Any] = {}
    t = threading.Thread(target=_server, args=(server, out))
    t.start()
    client.sendall(client_bytes)
    if then:
        status, _ = _read_msg(client)
        assert status == COMPLETE
        client.sendall(then)
    t.join(timeout=10)
    return out, client


def test_plain_sign_in_then_framed_messages() -> None:
    frame = struct.pack(">I", 9) + b"ping-pong"
    out, client = _run(_msg(START, b"PLAIN") + _msg(OK, b"\0ana\0right"), then=frame)
    assert out["who"] == "ana"
    assert out["read"] == b"ping-pong"
    assert client.recv(100, socket.MSG_WAITALL) == struct.pack(">I", 4) + b"pong"


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        (_msg(START, b"PLAIN") + _msg(COMPLETE, b"\0ana\0wrong"), ErrorCode.AUTH_FAILED),
        (_msg(START, b"GSSAPI"), ErrorCode.SQL_AUTH_HANDSHAKE),
        (_msg(START, b"PLAIN") + _msg(OK, b"no separators"), ErrorCode.SQL_AUTH_HANDSHAKE),
        (_msg(OK, b"PLAIN"), ErrorCode.SQL_AUTH_HANDSHAKE),
        (b"\x80\x01\x00\x01" + b"\0" * 8, ErrorCode.SQL_AUTH_HANDSHAKE),  # Thrift, no SASL
    ],
)
def test_a_refused_sign_in_answers_bad_with_the_catalogued_message(
    sent: bytes, code: ErrorCode
) -> None:
    out, client = _run(sent)
    assert out["error"] is code
    if code is not ErrorCode.SQL_AUTH_HANDSHAKE or sent[0] == START:
        status, message = _read_msg(client)
        assert status == BAD
        assert message.decode().startswith(f"[{code.id}]")


def test_row_set_columns_carry_types_and_null_bitmaps() -> None:
    schema = StructType(
        [
            StructField("n", IntegerType()),
            StructField("s", StringType()),
            StructField("d", DateType()),
            StructField("t", TimestampType()),
            StructField("x", DecimalType(10, 2)),
        ]
    )
    rows = [(i if i % 3 else None, f"v{i}", dt.date(2024, 1, i + 1),
             dt.datetime(2024, 1, 1, 8, i), Decimal("1.50")) for i in range(10)]  # fmt: skip
    rs = row_set(schema, rows, 20)
    assert rs.startRowOffset == 20
    ints = rs.columns[0].i32Val
    assert ints.values[:4] == [0, 1, 2, 0]
    assert ints.nulls == bytes([0b01001001, 0b00000010])  # rows 0, 3, 6, 9
    assert rs.columns[2].stringVal.values[0] == "2024-01-01"
    assert rs.columns[3].stringVal.values[1] == "2024-01-01 08:01:00"
    assert rs.columns[4].stringVal.values[0] == "1.50"
    desc = table_schema(schema).columns[4].typeDesc.types[0].primitiveEntry
    assert desc.type == tt.TTypeId.DECIMAL_TYPE
    assert desc.typeQualifiers.qualifiers["scale"].i32Value == 2


def test_jdbc_patterns() -> None:
    assert _like(None) is None
    assert _like("%") is None
    pattern = _like("de_d%")
    assert pattern is not None
    assert pattern.fullmatch("deid")
    assert pattern.fullmatch("DEIDX")
    escaped = _like(r"a\_b")
    assert escaped is not None
    assert escaped.fullmatch("a_b")
    assert not escaped.fullmatch("axb")


def test_error_statuses_carry_the_code_never_the_exception_text() -> None:
    refused = status_of(error(ErrorCode.ACCESS_DENIED, role="analyst", operation="read",
                              table="silver.x", reason="no read grant"))  # fmt: skip
    assert refused.statusCode == tt.TStatusCode.ERROR_STATUS
    assert refused.errorMessage.startswith("[LH-SEC-006]")
    assert (refused.sqlState, refused.errorCode) == ("42000", 403)
    crashed = status_of(ValueError("patient 张三 value 13800138000"))
    assert (
        crashed.errorMessage
        == "[LH-SRV-004] " + error(ErrorCode.SRV_INTERNAL, reason="ValueError").render()
    )
    assert "张三" not in crashed.errorMessage


def _connection(now: list[float]) -> Connection:
    gateway = SqlGateway(
        None,  # type: ignore[arg-type]  # sessions and handles need no Spark
        SqlEndpointSettings(idle_timeout_s=60),
        tls=None,  # plain TCP on the loopback default host
        access=None,  # type: ignore[arg-type]
        identity=None,  # type: ignore[arg-type]
        clock=lambda: now[0],
    )
    return Connection(gateway, Principal("ana", "analyst"), None)  # type: ignore[arg-type]


def test_sessions_end_after_the_idle_timeout_and_need_their_secret() -> None:
    now = [0.0]
    conn = _connection(now)
    opened = conn.OpenSession(tt.TOpenSessionReq(client_protocol=V10 + 2))  # a newer client
    assert opened.serverProtocolVersion == V10
    handle = opened.sessionHandle
    info = tt.TGetInfoReq(sessionHandle=handle, infoType=tt.TGetInfoType.CLI_SERVER_NAME)
    assert conn.GetInfo(info).infoValue.stringValue == "Clinical lakehouse SQL endpoint"
    forged = tt.TSessionHandle(
        sessionId=tt.THandleIdentifier(guid=handle.sessionId.guid, secret=b"x" * 16)
    )
    refused = conn.GetInfo(tt.TGetInfoReq(sessionHandle=forged, infoType=info.infoType))
    assert refused.status.errorMessage.startswith("[LH-SQL-002]")
    now[0] = 59.0
    assert conn.GetInfo(info).status.statusCode == tt.TStatusCode.SUCCESS_STATUS
    now[0] = 120.0  # 61 s after its last use
    assert conn.GetInfo(info).status.errorMessage.startswith("[LH-SQL-002]")
    assert conn.sessions == {}


def test_clients_before_protocol_v6_are_refused() -> None:
    old = _connection([0.0]).OpenSession(tt.TOpenSessionReq(client_protocol=V6 - 1))
    assert old.status.errorMessage.startswith("[LH-SQL-003]")
    assert (old.status.sqlState, old.status.errorCode) == ("0A000", 501)


def test_tls_by_default_and_plain_tcp_only_on_a_loopback_host(tmp_path: Path) -> None:
    on = listener_tls(Settings(data_dir=tmp_path))
    assert on is not None
    assert on.minimum_version == ssl.TLSVersion.TLSv1_2
    loop = Settings(data_dir=tmp_path, sql_endpoint=SqlEndpointSettings(tls=False))
    assert listener_tls(loop) is None
    for host in ("0.0.0.0", "10.1.2.3", "sql.hospital.example"):
        wide = SqlEndpointSettings(tls=False, host=host)
        with pytest.raises(LakehouseError) as exc:
            listener_tls(Settings(data_dir=tmp_path, sql_endpoint=wide))
        assert exc.value.code is ErrorCode.CONFIG_INVALID
        with pytest.raises(LakehouseError) as exc:  # nor by handing the gateway no context
            SqlGateway(None, wide, tls=None, access=None, identity=None)  # type: ignore[arg-type]
        assert exc.value.code is ErrorCode.CONFIG_INVALID
