"""The SQL endpoint: a HiveServer2-protocol gateway over the guarded, audited read path.

Analysts and BI tools connect with the Hive JDBC driver (beeline, DBeaver, Tableau's Spark/
Hive connectors), ODBC drivers or PyHive to ``jdbc:hive2://HOST:PORT/default``. The gateway
speaks HiveServer2's Thrift binary protocol (TCLIService, protocol V6 to V10, columnar
results) over SASL PLAIN: the user name and password of a lakehouse account, or a session
token or hospital single sign-on token (OIDC JWT) as the password. The listener speaks TLS
1.2 or newer (``ssl=true`` in the JDBC URL) with the certificate of ``lakehouse serve``
(:func:`lakehouse.governance.tls.server_tls`), so the password never travels in clear; plain
TCP (``sql_endpoint.tls`` off) is allowed on a loopback address only.

Every statement goes through :meth:`AccessService.query` (docs/adr/0027, 0030): the SQL
guard rewrites it under the caller's role (analysts read ``deid.*`` only), patients outside
the scope are refused, and the read is audited before a row leaves. A statement holds at
most ``sql_endpoint.max_rows`` rows (the operation log says when it reached them), paged out
by ``FetchResults``. The catalog calls list only the tables and columns the caller's policy
lets it read. Errors are HiveServer2 error statuses carrying the catalogued ``LH-`` code and
message, never a value from the data.

One process, one Spark session, one thread per client connection (``lakehouse
sql-endpoint``); a connection idle for ``sql_endpoint.idle_timeout_s`` is closed with its
sessions.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyspark.sql import SparkSession
from pyspark.sql.types import (
    BooleanType,
    DecimalType,
    IntegerType,
    ShortType,
    StringType,
    StructField,
    StructType,
)
from TCLIService import TCLIService
from TCLIService import ttypes as tt
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.transport.TTransport import TTransportException

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import Action, AuditEvent, record_or_refuse
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.oidc import OidcVerifier
from lakehouse.governance.sessions import Principal
from lakehouse.governance.tls import is_loopback
from lakehouse.logging import silence_data_loggers
from lakehouse.settings import Settings, SqlEndpointSettings
from serving.sql_endpoint.rowsets import (
    Result,
    jdbc_type,
    log_set,
    row_set,
    table_schema,
    type_name,
)
from serving.sql_endpoint.sasl import SaslServerTransport

logger = logging.getLogger(__name__)

V6 = tt.TProtocolVersion.HIVE_CLI_SERVICE_PROTOCOL_V6
V10 = tt.TProtocolVersion.HIVE_CLI_SERVICE_PROTOCOL_V10
DBMS_NAME = "Spark SQL"  # the dialect statements are written in (clients pick it by name)
SERVER_NAME = "Clinical lakehouse SQL endpoint"
_USE = re.compile(r"^\s*use\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\s*;?\s*$", re.IGNORECASE)
_CONDITION = re.compile(r"^[A-Z][A-Z0-9_.]{0,80}$")
#: Longest a new connection may take over its TLS handshake and sign-in (then the connection
#: idles up to ``sql_endpoint.idle_timeout_s``): a silent client does not hold a slot long.
SIGN_IN_TIMEOUT_S = 30.0
T = TypeVar("T")


_KINDS = {"s": StringType(), "i": IntegerType(), "h": ShortType(), "b": BooleanType()}


def _fields(spec: str) -> StructType:
    """A result schema from ``NAME:kind`` words (s string, i int, h short, b boolean)."""
    return StructType([StructField(n, _KINDS[k]) for n, k in (w.split(":") for w in spec.split())])


_NO_RESULT = StructType([])
_CATALOGS = _fields("TABLE_CAT:s")
_SCHEMAS = _fields("TABLE_SCHEM:s TABLE_CATALOG:s")
_TABLE_TYPES = _fields("TABLE_TYPE:s")
_TABLES = _fields(
    "TABLE_CAT:s TABLE_SCHEM:s TABLE_NAME:s TABLE_TYPE:s REMARKS:s TYPE_CAT:s TYPE_SCHEM:s "
    "TYPE_NAME:s SELF_REFERENCING_COL_NAME:s REF_GENERATION:s"
)
_COLUMNS = _fields(
    "TABLE_CAT:s TABLE_SCHEM:s TABLE_NAME:s COLUMN_NAME:s DATA_TYPE:i TYPE_NAME:s "
    "COLUMN_SIZE:i BUFFER_LENGTH:i DECIMAL_DIGITS:i NUM_PREC_RADIX:i NULLABLE:i REMARKS:s "
    "COLUMN_DEF:s SQL_DATA_TYPE:i SQL_DATETIME_SUB:i CHAR_OCTET_LENGTH:i ORDINAL_POSITION:i "
    "IS_NULLABLE:s SCOPE_CATALOG:s SCOPE_SCHEMA:s SCOPE_TABLE:s SOURCE_DATA_TYPE:h "
    "IS_AUTO_INCREMENT:s"
)
_TYPE_INFO = _fields(
    "TYPE_NAME:s DATA_TYPE:i PRECISION:i LITERAL_PREFIX:s LITERAL_SUFFIX:s CREATE_PARAMS:s "
    "NULLABLE:h CASE_SENSITIVE:b SEARCHABLE:h UNSIGNED_ATTRIBUTE:b FIXED_PREC_SCALE:b "
    "AUTO_INCREMENT:b LOCAL_TYPE_NAME:s MINIMUM_SCALE:h MAXIMUM_SCALE:h SQL_DATA_TYPE:i "
    "SQL_DATETIME_SUB:i NUM_PREC_RADIX:i"
)
_FUNCTIONS = _fields(
    "FUNCTION_CAT:s FUNCTION_SCHEM:s FUNCTION_NAME:s REMARKS:s FUNCTION_TYPE:i SPECIFIC_NAME:s"
)
_PRIMARY_KEYS = _fields("TABLE_CAT:s TABLE_SCHEM:s TABLE_NAME:s COLUMN_NAME:s KEY_SEQ:i PK_NAME:s")
_CROSS_REFERENCE = _fields(
    "PKTABLE_CAT:s PKTABLE_SCHEM:s PKTABLE_NAME:s PKCOLUMN_NAME:s FKTABLE_CAT:s "
    "FKTABLE_SCHEM:s FKTABLE_NAME:s FKCOLUMN_NAME:s KEY_SEQ:i UPDATE_RULE:i DELETE_RULE:i "
    "FK_NAME:s PK_NAME:s DEFERRABILITY:i"
)
#: (type name, java.sql.Types code, precision, literal quote, numeric) of GetTypeInfo.
_TYPES = (
    ("BOOLEAN", 16, None, None, False),
    ("TINYINT", -6, 3, None, True),
    ("SMALLINT", 5, 5, None, True),
    ("INT", 4, 10, None, True),
    ("BIGINT", -5, 19, None, True),
    ("FLOAT", 6, 7, None, True),
    ("DOUBLE", 8, 15, None, True),
    ("DECIMAL", 3, 38, None, True),
    ("STRING", 12, None, "'", False),
    ("DATE", 91, None, "'", False),
    ("TIMESTAMP", 93, None, "'", False),
    ("BINARY", -2, None, None, False),
)


def _ok() -> Any:
    return tt.TStatus(statusCode=tt.TStatusCode.SUCCESS_STATUS)


def status_of(exc: BaseException) -> Any:
    """The HiveServer2 error status of ``exc``: its catalogued code and message only."""
    lh = exc if isinstance(exc, LakehouseError) else _catalogued(exc)
    status = lh.code.http_status
    state = "0A000" if status == 501 else ("42000" if 400 <= status < 500 else "HY000")
    return tt.TStatus(
        statusCode=tt.TStatusCode.ERROR_STATUS,
        errorMessage=f"[{lh.code.id}] {lh.render()}",
        sqlState=state,
        errorCode=status,
    )


def _catalogued(exc: BaseException) -> LakehouseError:
    """A Spark failure as ``LH-SQL-005`` with Spark's error class (its message may quote
    data values, so it is never passed on); anything else ``LH-SRV-004``, type logged."""
    from pyspark.errors import PySparkException

    if isinstance(exc, PySparkException):
        condition = str(exc.getCondition() or "")
        return error(
            ErrorCode.SQL_QUERY_FAILED,
            reason=condition if _CONDITION.match(condition) else type(exc).__name__,
        )
    logger.error("SQL endpoint call failed: %s", type(exc).__name__)
    return error(ErrorCode.SRV_INTERNAL, reason=type(exc).__name__)


def _answer(response: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a TCLIService call; any exception becomes ``response(status=<error status>)``."""

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def run(self: Connection, req: Any) -> Any:
            try:
                return call(self, req)
            except Exception as exc:  # every failure is answered, never raised to Thrift
                return response(status=status_of(exc))

        return run

    return wrap


def _like(pattern: str | None) -> re.Pattern[str] | None:
    """A JDBC catalog pattern (``%``, ``_``, ``\\`` escapes) as a regular expression."""
    if pattern is None or pattern in ("", "%", "*"):
        return None
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE)


def _fits(pattern: re.Pattern[str] | None, value: str) -> bool:
    return pattern is None or pattern.fullmatch(value) is not None


@dataclass(frozen=True)
class Readable:
    """A table or view the caller's role may read, with the columns it may see."""

    schema: str
    name: str
    kind: str  # TABLE or VIEW
    comment: str
    columns: tuple[StructField, ...]


@dataclass
class _Operation:
    handle: Any
    result: Result
    has_result_set: bool
    started_ms: int
    offset: int = 0
    log_pos: int = 0


@dataclass
class _Session:
    handle: Any
    protocol: int
    last_used: float
    operations: dict[bytes, _Operation] = field(default_factory=dict)


def _handle() -> Any:
    return tt.THandleIdentifier(guid=uuid.uuid4().bytes, secret=uuid.uuid4().bytes)


def listener_tls(cfg: Settings) -> ssl.SSLContext | None:
    """The TLS context of the listener (:func:`lakehouse.governance.tls.server_context`: the
    hospital's certificate or the generated self-signed one, TLS 1.2 or newer); None when
    ``sql_endpoint.tls`` is off, which is allowed on a loopback host only (``LH-CFG-001``)."""
    from lakehouse.governance.tls import server_context

    if not cfg.sql_endpoint.tls:
        _plain_allowed(cfg.sql_endpoint.host)
        return None
    return server_context(cfg)


def _plain_allowed(host: str) -> None:
    if not is_loopback(host):
        raise error(
            ErrorCode.CONFIG_INVALID,
            setting="sql_endpoint.tls",
            reason="plain TCP (the password in clear) is allowed on a loopback address only",
        )


class SqlGateway:
    """The HiveServer2 listener; ``start()`` binds and serves in threads, ``stop()`` ends.

    ``tls`` is the listener's server context (:func:`listener_tls`); None serves plain TCP,
    refused (``LH-CFG-001``) unless ``cfg.host`` is a loopback address."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: SqlEndpointSettings,
        *,
        tls: ssl.SSLContext | None,
        access: AccessService,
        identity: IdentityService,
        oidc: OidcVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tls is None:
            _plain_allowed(cfg.host)
        self.spark, self.cfg, self.tls, self.access, self.identity, self.oidc = (
            spark, cfg, tls, access, identity, oidc
        )  # fmt: skip
        self.clock = clock
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(cfg.max_connections)
        self._threads: list[threading.Thread] = []
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()

    # -- listener ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._listener is not None, "start() first"
        return int(self._listener.getsockname()[1])

    def start(self) -> SqlGateway:
        """Bind ``host:port`` (``LH-SQL-006`` when it cannot) and accept in a thread."""
        silence_data_loggers()  # a failed query's message can quote data values
        try:
            listener = socket.create_server((self.cfg.host, self.cfg.port), reuse_port=False)
        except OSError as exc:
            url = f"{self.cfg.host}:{self.cfg.port}"
            raise error(ErrorCode.SQL_LISTEN_FAILED, url=url, reason=exc.strerror) from exc
        listener.settimeout(0.5)
        self._listener = listener
        accept = threading.Thread(target=self._accept, name="sql-endpoint-accept", daemon=True)
        accept.start()
        self._threads.append(accept)
        logger.info(
            "SQL endpoint listening on %s:%d (%s)",
            self.cfg.host, self.port, "TLS" if self.tls is not None else "plain TCP",
        )  # fmt: skip
        return self

    def wait(self) -> None:
        """Block until :meth:`stop` (the command's main thread)."""
        while not self._stopping.wait(1.0):
            pass

    def stop(self) -> None:
        """Stop accepting, close every connection and wait for their threads."""
        self._stopping.set()
        with self._lock:
            connections = list(self._connections)
        for c in connections:
            c.transport.close()
        for t in self._threads:
            t.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> SqlGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                sock, _ = self._listener.accept()
            except OSError:  # timeout (checks the stop flag) or the listener closed
                self._slots.release()
                continue
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            t.name = "sql-endpoint-connection"
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(min(SIGN_IN_TIMEOUT_S, self.cfg.idle_timeout_s))
            # Every answer is one sendall, which TLS cuts into records of 16 KiB: without
            # this, Nagle holds a page's last record for the client's delayed ACK (40 ms).
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = raw
            if self.tls is not None:
                try:  # the handshake, here in the connection's thread
                    sock = self.tls.wrap_socket(raw, server_side=True)
                except OSError as exc:  # ssl.SSLError included: plain TCP, TLS < 1.2, ...
                    logger.info("SQL endpoint TLS handshake refused: %s", _tls_reason(exc))
                    raw.close()
                    return
            self._session_loop(SaslServerTransport(sock))
        finally:
            self._slots.release()

    def _session_loop(self, transport: SaslServerTransport) -> None:
        """Sign in (SASL PLAIN), then answer TCLIService calls until the client leaves."""
        try:
            try:
                who = transport.negotiate(self.authenticate)
            except LakehouseError as exc:
                logger.info("SQL endpoint sign-in refused: %s", exc.code.id)
                return
            except (OSError, TTransportException):
                return
            transport.sock.settimeout(self.cfg.idle_timeout_s)
            connection = Connection(self, who, transport)
            with self._lock:
                self._connections.add(connection)
            protocol = TBinaryProtocol(transport)
            processor = TCLIService.Processor(connection)
            try:
                while not self._stopping.is_set():
                    processor.process(protocol, protocol)
            except (OSError, TTransportException, EOFError):
                pass  # the client went away, idled out, or the gateway stops
            finally:
                with self._lock:
                    self._connections.discard(connection)
                connection.sessions.clear()
        finally:
            transport.close()

    # -- what connections use ------------------------------------------------------------
    def authenticate(self, user: str, password: str) -> Principal:
        """The principal of a sign-in: a single sign-on token (JWT, when OIDC is set up), a
        session token of ``lakehouse serve``, or the account's password (audited, lockout)."""
        token = password.strip()
        if self.oidc is not None and _is_jwt(token):
            who = self.oidc.verify(token)
            record_or_refuse(
                self.identity.audit,
                AuditEvent(
                    Action.LOGIN_SUCCESS, who.username, role=who.role, session_id=who.session_id,
                    detail='{"auth":"oidc","via":"sql-endpoint"}',
                ),
            )  # fmt: skip
        elif _is_session_token(token):
            who = self.identity.session(token)
        else:
            return self.identity.login(user, password)[1]
        if who.username != user:
            raise error(ErrorCode.AUTH_FAILED)
        return who

    def execute(self, who: Principal, sql: str) -> Result:
        """One statement through the guarded, audited read path, capped at ``max_rows``."""
        cap = self.cfg.max_rows
        # At most ``cap`` rows are read (so the audit event counts exactly the rows served);
        # a full result may have been cut off, and says so.
        rows = self.access.query(who, sql, purpose=self.cfg.purpose, limit=cap)
        # The result's types: the same guard's rewrite, analysed by Spark (nothing runs).
        schema = self.spark.sql(self.access.guard.rewrite(who, sql).sql).schema
        result = Result(schema, [tuple(r) for r in rows], capped=len(rows) >= cap)
        if result.capped:
            notice = error(ErrorCode.SQL_ROWS_CAPPED, count=cap)
            result.log.append(f"[{notice.code.id}] {notice.render()}")
            logger.warning("SQL endpoint: a statement of %s stopped at %d rows", who.role, cap)
        return result

    def readable(self, who: Principal) -> list[Readable]:
        """The tables and views of the catalog the role may read that exist, with the
        columns it may see (what the guard would expand ``SELECT *`` to)."""
        policy = self.access.guard.policy
        out = []
        for name, spec in sorted(self.access.guard.catalog.items()):
            if "." not in name or not policy.may_read(who.role, name):
                continue
            try:
                kind = self.spark.catalog.getTable(name).tableType
            except Exception:  # noqa: S112 (not created in this lakehouse yet: not listed)
                continue
            visible = set(policy.visible_columns(who.role, spec))
            schema, table = name.split(".", 1)
            out.append(
                Readable(
                    schema, table, "VIEW" if kind == "VIEW" else "TABLE", spec.comment,
                    tuple(c for c in spec.columns if c.name in visible),
                )
            )  # fmt: skip
        return out


def _tls_reason(exc: OSError) -> str:
    """OpenSSL's reason of a failed handshake (``WRONG_VERSION_NUMBER``: plain TCP;
    ``UNSUPPORTED_PROTOCOL``: below TLS 1.2), or the error's type."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) and _CONDITION.match(reason) else type(exc).__name__


def _is_jwt(token: str) -> bool:
    head = token.split(".")
    return len(head) == 3 and "alg" in _json_part(head[0])


def _is_session_token(token: str) -> bool:
    head = token.split(".")
    return len(head) == 2 and "username" in _json_part(head[0])


def _json_part(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return value if isinstance(value, dict) else {}


class Connection:
    """One client connection (signed in as ``who``): its sessions and their operations.
    The methods are TCLIService's; each answers an error status rather than raising."""

    def __init__(self, gateway: SqlGateway, who: Principal, transport: SaslServerTransport):
        self.gw, self.who, self.transport = gateway, who, transport
        self.sessions: dict[bytes, _Session] = {}

    # -- handles -------------------------------------------------------------------------
    def _session(self, handle: Any) -> _Session:
        now = self.gw.clock()
        for key, s in list(self.sessions.items()):  # idle sessions end here
            if now - s.last_used > self.gw.cfg.idle_timeout_s:
                del self.sessions[key]
        ident = getattr(handle, "sessionId", None)
        session = self.sessions.get(getattr(ident, "guid", b""))
        if session is None or session.handle.sessionId.secret != getattr(ident, "secret", b""):
            raise error(ErrorCode.SQL_HANDLE_UNKNOWN, name="session", reason="closed or expired")
        session.last_used = now
        return session

    def _operation(self, handle: Any) -> tuple[_Session, _Operation]:
        ident = getattr(handle, "operationId", None)
        guid = getattr(ident, "guid", b"")
        for s in list(self.sessions.values()):
            op = s.operations.get(guid)
            if op is not None and op.handle.operationId.secret == getattr(ident, "secret", b""):
                return self._session(s.handle), op
        raise error(ErrorCode.SQL_HANDLE_UNKNOWN, name="operation", reason="closed or unknown")

    def _add(self, session: _Session, kind: int, result: Result, has_result_set: bool) -> Any:
        handle = tt.TOperationHandle(
            operationId=_handle(), operationType=kind, hasResultSet=has_result_set
        )
        session.operations[handle.operationId.guid] = _Operation(
            handle, result, has_result_set, int(time.time() * 1000)
        )
        return handle

    def _catalog_call(self, req: Any, kind: int, result: Result, resp: Callable[..., Any]) -> Any:
        session = self._session(req.sessionHandle)
        return resp(status=_ok(), operationHandle=self._add(session, kind, result, True))

    # -- sessions ------------------------------------------------------------------------
    @_answer(tt.TOpenSessionResp)
    def OpenSession(self, req: Any) -> Any:  # noqa: N802 (TCLIService names)
        version = min(int(req.client_protocol), V10)
        if version < V6:
            raise error(
                ErrorCode.SQL_UNSUPPORTED, operation="this client",
                reason="HiveServer2 protocol V6 or later (columnar results) is required",
            )  # fmt: skip
        handle = tt.TSessionHandle(sessionId=_handle())
        self.sessions[handle.sessionId.guid] = _Session(handle, version, self.gw.clock())
        logger.info("SQL endpoint session opened (role %s)", self.who.role)
        return tt.TOpenSessionResp(
            status=_ok(), serverProtocolVersion=version, sessionHandle=handle, configuration={}
        )

    @_answer(tt.TCloseSessionResp)
    def CloseSession(self, req: Any) -> Any:  # noqa: N802
        session = self._session(req.sessionHandle)
        del self.sessions[session.handle.sessionId.guid]
        return tt.TCloseSessionResp(status=_ok())

    @_answer(tt.TGetInfoResp)
    def GetInfo(self, req: Any) -> Any:  # noqa: N802
        self._session(req.sessionHandle)
        info = tt.TGetInfoType
        text = {
            info.CLI_DBMS_NAME: DBMS_NAME,
            # Spark's version only when asked (one JVM call).
            info.CLI_DBMS_VER: self.gw.spark.version if req.infoType == info.CLI_DBMS_VER else "",
            info.CLI_SERVER_NAME: SERVER_NAME,
            info.CLI_USER_NAME: self.who.username,
            info.CLI_IDENTIFIER_QUOTE_CHAR: "`",
            info.CLI_DATA_SOURCE_READ_ONLY: "Y",
        }
        if req.infoType in text:
            value = tt.TGetInfoValue(stringValue=text[req.infoType])
        elif req.infoType in (info.CLI_MAX_COLUMN_NAME_LEN, info.CLI_MAX_SCHEMA_NAME_LEN,
                              info.CLI_MAX_TABLE_NAME_LEN):  # fmt: skip
            value = tt.TGetInfoValue(lenValue=128)
        else:
            raise error(
                ErrorCode.SQL_UNSUPPORTED, operation="GetInfo",
                reason=f"info type {int(req.infoType)} is not answered",
            )  # fmt: skip
        return tt.TGetInfoResp(status=_ok(), infoValue=value)

    # -- statements ----------------------------------------------------------------------
    @_answer(tt.TExecuteStatementResp)
    def ExecuteStatement(self, req: Any) -> Any:  # noqa: N802
        session = self._session(req.sessionHandle)
        started = time.perf_counter()
        if _USE.match(req.statement or ""):
            # Clients send USE on connect; every query names schema.table, so it changes
            # nothing (a schema the role may not read is still refused at its first query).
            result, has_rows = Result(_NO_RESULT, []), False
        else:
            result, has_rows = self.gw.execute(self.who, req.statement or ""), True
        logger.info(
            "SQL endpoint statement of %s: %d rows in %.0f ms",
            self.who.role, len(result.rows), 1000 * (time.perf_counter() - started),
        )  # fmt: skip
        handle = self._add(session, tt.TOperationType.EXECUTE_STATEMENT, result, has_rows)
        return tt.TExecuteStatementResp(status=_ok(), operationHandle=handle)

    @_answer(tt.TGetOperationStatusResp)
    def GetOperationStatus(self, req: Any) -> Any:  # noqa: N802
        _, op = self._operation(req.operationHandle)
        return tt.TGetOperationStatusResp(
            status=_ok(),
            operationState=tt.TOperationState.FINISHED_STATE,
            operationStarted=op.started_ms,
            operationCompleted=op.started_ms,
            hasResultSet=op.has_result_set,
        )

    @_answer(tt.TCancelOperationResp)
    def CancelOperation(self, req: Any) -> Any:  # noqa: N802
        session, op = self._operation(req.operationHandle)
        session.operations.pop(op.handle.operationId.guid, None)
        return tt.TCancelOperationResp(status=_ok())

    @_answer(tt.TCloseOperationResp)
    def CloseOperation(self, req: Any) -> Any:  # noqa: N802
        session, op = self._operation(req.operationHandle)
        session.operations.pop(op.handle.operationId.guid, None)
        return tt.TCloseOperationResp(status=_ok())

    @_answer(tt.TGetResultSetMetadataResp)
    def GetResultSetMetadata(self, req: Any) -> Any:  # noqa: N802
        _, op = self._operation(req.operationHandle)
        return tt.TGetResultSetMetadataResp(status=_ok(), schema=table_schema(op.result.schema))

    @_answer(tt.TFetchResultsResp)
    def FetchResults(self, req: Any) -> Any:  # noqa: N802
        _, op = self._operation(req.operationHandle)
        first = req.orientation == tt.TFetchOrientation.FETCH_FIRST
        if req.orientation not in (
            tt.TFetchOrientation.FETCH_NEXT,
            tt.TFetchOrientation.FETCH_FIRST,
        ):
            raise error(
                ErrorCode.SQL_UNSUPPORTED, operation="FetchResults",
                reason="only FETCH_NEXT and FETCH_FIRST are supported",
            )  # fmt: skip
        if req.fetchType == 1:  # the operation log
            if first:
                op.log_pos = 0
            lines = op.result.log[op.log_pos :]
            op.log_pos = len(op.result.log)
            return tt.TFetchResultsResp(status=_ok(), hasMoreRows=False, results=log_set(lines))
        if first:
            op.offset = 0
        rows = op.result.rows
        n = max(1, min(int(req.maxRows or self.gw.cfg.page_rows), self.gw.cfg.page_rows))
        page = rows[op.offset : op.offset + n]
        results = row_set(op.result.schema, page, op.offset)
        op.offset += len(page)
        return tt.TFetchResultsResp(
            status=_ok(), hasMoreRows=op.offset < len(rows), results=results
        )

    @_answer(tt.TGetLogResp)
    def GetLog(self, req: Any) -> Any:  # noqa: N802
        _, op = self._operation(req.operationHandle)
        return tt.TGetLogResp(status=_ok(), log="\n".join(op.result.log))

    # -- catalog calls -------------------------------------------------------------------
    @_answer(tt.TGetCatalogsResp)
    def GetCatalogs(self, req: Any) -> Any:  # noqa: N802
        # No catalog level: queries name schema.table (as the guard requires).
        result = Result(_CATALOGS, [])
        return self._catalog_call(req, tt.TOperationType.GET_CATALOGS, result, tt.TGetCatalogsResp)

    @_answer(tt.TGetSchemasResp)
    def GetSchemas(self, req: Any) -> Any:  # noqa: N802
        self._session(req.sessionHandle)
        want = _like(req.schemaName)
        names = sorted({t.schema for t in self.gw.readable(self.who) if _fits(want, t.schema)})
        result = Result(_SCHEMAS, [(s, "") for s in names])
        return self._catalog_call(req, tt.TOperationType.GET_SCHEMAS, result, tt.TGetSchemasResp)

    @_answer(tt.TGetTablesResp)
    def GetTables(self, req: Any) -> Any:  # noqa: N802
        self._session(req.sessionHandle)
        rows = [
            ("", t.schema, t.name, t.kind, t.comment, None, None, None, None, None)
            for t in self._tables(req.schemaName, req.tableName)
            if not req.tableTypes or t.kind in {str(x).upper() for x in req.tableTypes}
        ]
        result = Result(_TABLES, rows)
        return self._catalog_call(req, tt.TOperationType.GET_TABLES, result, tt.TGetTablesResp)

    @_answer(tt.TGetTableTypesResp)
    def GetTableTypes(self, req: Any) -> Any:  # noqa: N802
        result = Result(_TABLE_TYPES, [("TABLE",), ("VIEW",)])
        kind = tt.TOperationType.GET_TABLE_TYPES
        return self._catalog_call(req, kind, result, tt.TGetTableTypesResp)

    @_answer(tt.TGetColumnsResp)
    def GetColumns(self, req: Any) -> Any:  # noqa: N802
        self._session(req.sessionHandle)
        want = _like(req.columnName)
        rows = []
        for t in self._tables(req.schemaName, req.tableName):
            for pos, c in enumerate(t.columns, start=1):
                if _fits(want, c.name):
                    rows.append(_column_row(t, pos, c))
        result = Result(_COLUMNS, rows)
        return self._catalog_call(req, tt.TOperationType.GET_COLUMNS, result, tt.TGetColumnsResp)

    @_answer(tt.TGetTypeInfoResp)
    def GetTypeInfo(self, req: Any) -> Any:  # noqa: N802
        rows = [
            (name, code, precision, quote, quote, None, 1, name == "STRING", 3,
             not numeric, False, False, name, 0, 0, None, None, 10 if numeric else None)
            for name, code, precision, quote, numeric in _TYPES
        ]  # fmt: skip
        result = Result(_TYPE_INFO, rows)
        kind = tt.TOperationType.GET_TYPE_INFO
        return self._catalog_call(req, kind, result, tt.TGetTypeInfoResp)

    @_answer(tt.TGetFunctionsResp)
    def GetFunctions(self, req: Any) -> Any:  # noqa: N802
        result = Result(_FUNCTIONS, [])  # Spark's built-in functions; no user functions
        kind = tt.TOperationType.GET_FUNCTIONS
        return self._catalog_call(req, kind, result, tt.TGetFunctionsResp)

    @_answer(tt.TGetPrimaryKeysResp)
    def GetPrimaryKeys(self, req: Any) -> Any:  # noqa: N802
        result = Result(_PRIMARY_KEYS, [])  # Delta tables declare no constraints
        return self._catalog_call(req, tt.TOperationType.UNKNOWN, result, tt.TGetPrimaryKeysResp)

    @_answer(tt.TGetCrossReferenceResp)
    def GetCrossReference(self, req: Any) -> Any:  # noqa: N802
        result = Result(_CROSS_REFERENCE, [])
        kind = tt.TOperationType.UNKNOWN
        return self._catalog_call(req, kind, result, tt.TGetCrossReferenceResp)

    @_answer(tt.TGetDelegationTokenResp)
    def GetDelegationToken(self, req: Any) -> Any:  # noqa: N802
        raise error(ErrorCode.SQL_UNSUPPORTED, operation="delegation tokens", reason="no Kerberos")

    @_answer(tt.TCancelDelegationTokenResp)
    def CancelDelegationToken(self, req: Any) -> Any:  # noqa: N802
        raise error(ErrorCode.SQL_UNSUPPORTED, operation="delegation tokens", reason="no Kerberos")

    @_answer(tt.TRenewDelegationTokenResp)
    def RenewDelegationToken(self, req: Any) -> Any:  # noqa: N802
        raise error(ErrorCode.SQL_UNSUPPORTED, operation="delegation tokens", reason="no Kerberos")

    def _tables(self, schema: str | None, table: str | None) -> Iterator[Readable]:
        want_schema, want_table = _like(schema), _like(table)
        for t in self.gw.readable(self.who):
            if _fits(want_schema, t.schema) and _fits(want_table, t.name):
                yield t


def _column_row(t: Readable, pos: int, c: StructField) -> tuple[Any, ...]:
    decimal = c.dataType if isinstance(c.dataType, DecimalType) else None
    return (
        "", t.schema, t.name, c.name, jdbc_type(c.dataType), type_name(c.dataType),
        decimal.precision if decimal else None, None, decimal.scale if decimal else None,
        10 if decimal else None, 1 if c.nullable else 0, (c.metadata or {}).get("comment"),
        None, None, None, None, pos, "YES" if c.nullable else "NO", None, None, None, None,
        "NO",
    )  # fmt: skip


def sql_gateway(spark: SparkSession, cfg: Settings) -> tuple[SqlGateway, Callable[[], None]]:
    """The configured gateway (one journaled audit log for sign-ins and reads, the access
    and identity services, OIDC when ``security.oidc_*`` is set) and what to call when the
    process ends (ships the audit journal)."""
    from lakehouse.governance.access import access_service
    from lakehouse.governance.audit_journal import JournaledAuditLog, service_audit_log
    from lakehouse.governance.identity import identity_service

    tls = listener_tls(cfg)  # before anything is opened: a refused setting opens nothing
    log = service_audit_log(spark, cfg, f"sql-endpoint-{cfg.sql_endpoint.port}")
    oidc = OidcVerifier(cfg.security) if cfg.security.oidc_issuer else None
    gateway = SqlGateway(
        spark,
        cfg.sql_endpoint,
        tls=tls,
        access=access_service(spark, cfg, audit=log),
        identity=identity_service(cfg, log),
        oidc=oidc,
    )

    def close() -> None:
        gateway.stop()
        if isinstance(log, JournaledAuditLog):
            log.close()

    return gateway, close
