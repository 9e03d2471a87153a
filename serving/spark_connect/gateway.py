"""Spark Connect for notebooks: a gRPC gateway that signs the caller in, guards every plan
and audits every read before the Spark Connect server runs it (docs/adr/0033).

Data scientists connect from Jupyter with PySpark's own client::

    spark = SparkSession.builder.remote(
        "sc://lakehouse.hospital:15002/;use_ssl=true;token=SESSION_TOKEN").getOrCreate()

``SESSION_TOKEN`` is a session token of ``lakehouse serve`` (``POST /api/login``) or a
hospital single sign-on token (OIDC JWT). The gateway speaks the Spark Connect protocol
(``spark.connect.SparkConnectService``) and forwards to the server of its own JVM
(:mod:`serving.spark_connect.upstream`), which only it can reach. For each request it:

1. authenticates the bearer token (``LH-SCN-001``) and replaces the client's user id with the
   signed-in user's, so the server keeps each user's sessions apart;
2. rewrites the plan under the user's policy (:class:`~serving.spark_connect.plans.PlanGuard`:
   tables and SQL through the SQL guard, allowlisted operations only, ``LH-SCN-002``);
3. checks the patients the plan's SQL names against the user's scope and records the read in
   the audit log before a row is forwarded (fail closed), like every other read path;
4. passes Spark's failures on as their error class only (``LH-SCN-003``): a Spark message
   can quote a value, from a row the user may not see;
5. lets a notebook read session settings, except secrets (tokens, passwords, keys), and
   change only ``spark_connect.settable_confs``; refuses artifact uploads (jars, Python
   files: code that would run on the server).

TLS (1.2 or newer, the certificate of ``lakehouse serve``) is on unless the gateway listens
on a loopback address and ``spark_connect.tls`` is off.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from pyspark.sql import SparkSession
from pyspark.sql.connect.proto import base_pb2 as pb
from pyspark.sql.connect.proto import base_pb2_grpc as pb_grpc
from pyspark.sql.connect.proto import relations_pb2 as rel

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.access import AccessService
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.oidc import OidcVerifier
from lakehouse.governance.sessions import Principal
from lakehouse.governance.tls import TlsFiles, is_loopback
from lakehouse.logging import silence_data_loggers
from lakehouse.settings import Settings, SparkConnectSettings
from serving.spark_connect.plans import GuardedPlan, PlanGuard, refused
from serving.spark_connect.upstream import Upstream, start_upstream

logger = logging.getLogger(__name__)

#: Session settings a notebook never reads back (Spark's own redaction pattern, widened).
SECRET = re.compile(r"(?i)secret|password|token|access[._]?key|credential|private")
_STATUS = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}
T = TypeVar("T")


class ConnectGateway:
    """The gateway's gRPC server; ``start()`` binds and serves, ``stop()`` ends."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: SparkConnectSettings,
        *,
        tls: TlsFiles | None,
        access: AccessService,
        identity: IdentityService,
        oidc: OidcVerifier | None = None,
        upstream: Upstream | None = None,
    ) -> None:
        if tls is None:
            _plain_allowed(cfg.host)
        self.spark, self.cfg, self.tls = spark, cfg, tls
        self.access, self.identity, self.oidc = access, identity, oidc
        self._upstream = upstream
        self._server: grpc.Server | None = None
        self._channel: grpc.Channel | None = None
        self._port = 0

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._port

    def start(self) -> ConnectGateway:
        """Start the Spark Connect server (once per JVM) and bind the gateway's port."""
        silence_data_loggers()  # a failed plan's message can quote data values
        upstream = self._upstream or start_upstream(self.spark)
        limit = self.cfg.max_message_mb << 20
        options = [("grpc.max_receive_message_length", limit),
                   ("grpc.max_send_message_length", limit)]  # fmt: skip
        self._channel = grpc.insecure_channel(upstream.target, options=options)
        stub = pb_grpc.SparkConnectServiceStub(self._channel)  # type: ignore[no-untyped-call]
        server = grpc.server(
            futures.ThreadPoolExecutor(self.cfg.max_workers, thread_name_prefix="spark-connect"),
            options=[*options, ("grpc.so_reuseport", 0)],
        )
        pb_grpc.add_SparkConnectServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Servicer(self, stub, upstream.token), server
        )
        address = f"{self.cfg.host}:{self.cfg.port}"
        try:
            if self.tls is None:
                port = server.add_insecure_port(address)
            else:
                pair = (self.tls.key.read_bytes(), self.tls.cert.read_bytes())
                port = server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
        except RuntimeError as exc:  # grpc raises when it cannot bind
            raise error(ErrorCode.CONNECT_LISTEN_FAILED, url=address, reason=str(exc)) from exc
        if port == 0:
            raise error(ErrorCode.CONNECT_LISTEN_FAILED, url=address, reason="port in use")
        server.start()
        self._server, self._port = server, port
        logger.info(
            "Spark Connect gateway listening on %s:%d (%s)",
            self.cfg.host, port, "TLS" if self.tls is not None else "plain, loopback",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop serving (requests in flight get 5 s) and close the upstream channel."""
        if self._server is not None:
            self._server.stop(grace=5).wait()
        if self._channel is not None:
            self._channel.close()

    def __enter__(self) -> ConnectGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the servicer uses ------------------------------------------------------------
    def authenticate(self, context: grpc.ServicerContext) -> Principal:
        """The principal of the request's bearer token (``LH-SCN-001``)."""
        metadata = dict(context.invocation_metadata())
        header = str(metadata.get("authorization", ""))
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise error(ErrorCode.CONNECT_AUTH, reason="no bearer token")
        token = token.strip()
        try:
            if self.oidc is not None and token.count(".") == 2:
                return self.oidc.verify(token)
            return self.identity.session(token)
        except LakehouseError as exc:
            raise error(ErrorCode.CONNECT_AUTH, reason=exc.code.id) from None

    def guard(self, who: Principal, plan: pb.Plan) -> GuardedPlan:
        """``plan`` rewritten for ``who``; its read authorized and audited (fail closed)."""
        purpose = self.cfg.purpose
        guarded = PlanGuard(lambda sql: self.access.rewrite(who, sql, purpose=purpose)).plan(plan)
        if guarded.tables:
            self.access.admit(who, guarded.queries, purpose=purpose)
        return guarded


class _Servicer(pb_grpc.SparkConnectServiceServicer):
    """``spark.connect.SparkConnectService``: each call signed in, guarded, forwarded."""

    def __init__(self, gw: ConnectGateway, stub: pb_grpc.SparkConnectServiceStub, token: str):
        self.gw, self.up = gw, stub
        self._meta = (("authorization", f"Bearer {token}"),) if token else ()

    # -- plans -----------------------------------------------------------------------------
    def ExecutePlan(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802 (the service's names)
        who = self._sign_in(context)
        req = _as_user(request, who)
        guarded = self._call(context, lambda: self.gw.guard(who, request.plan))
        req.plan.CopyFrom(guarded.plan)
        yield from self._stream(context, lambda: self.up.ExecutePlan(req, metadata=self._meta),
                                guarded.originals)  # fmt: skip

    def ReattachExecute(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        who = self._sign_in(context)
        req = _as_user(request, who)  # the server only reattaches the same user's operation
        yield from self._stream(context, lambda: self.up.ReattachExecute(req, metadata=self._meta))

    def AnalyzePlan(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        who = self._sign_in(context)
        req = _as_user(request, who)
        kind = request.WhichOneof("analyze")
        if kind == "input_files":
            self._abort(context, refused("inputFiles", "file locations are not shown"))
        if kind is not None:
            inner = getattr(req, kind)
            for fd, value in inner.ListFields():
                if isinstance(value, pb.Plan):  # schema, explain, same_semantics, ...
                    plan: pb.Plan = value
                    guarded = self._call(context, functools.partial(self._guard_schema, who, plan))
                    getattr(inner, fd.name).CopyFrom(guarded.plan)
                elif isinstance(value, rel.Relation):  # persist, unpersist, storage level
                    wrapped = pb.Plan(root=value)
                    guarded = self._call(
                        context, functools.partial(self._guard_schema, who, wrapped)
                    )
                    getattr(inner, fd.name).CopyFrom(guarded.plan.root)
        return self._unary(context, lambda: self.up.AnalyzePlan(req, metadata=self._meta))

    # -- session settings ------------------------------------------------------------------
    def Config(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        who = self._sign_in(context)
        req = _as_user(request, who)
        op = request.operation.WhichOneof("op_type")
        if op in ("set", "unset"):
            inner = getattr(request.operation, op)
            keys = [p.key for p in inner.pairs] if op == "set" else list(inner.keys)
            for key in keys:
                if not _settable(key, self.gw.cfg.settable_confs):
                    self._abort(context, refused(f"setting {key}", "not a notebook setting"))
        response = self._unary(context, lambda: self.up.Config(req, metadata=self._meta))
        for pair in response.pairs:  # secrets (tokens, passwords) never go back
            if SECRET.search(pair.key):
                pair.ClearField("value")
        return response

    # -- refused ---------------------------------------------------------------------------
    def AddArtifacts(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._sign_in(context)
        self._abort(context, refused("adding artifacts", "no jars, Python files or archives "
                                     "(code would run on the server)"))  # fmt: skip

    def FetchErrorDetails(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._sign_in(context)
        # Error details hold Spark's full messages (they can quote data): never forwarded.
        return pb.FetchErrorDetailsResponse(
            server_side_session_id=request.client_observed_server_side_session_id,
            session_id=request.session_id,
        )

    # -- passed on as the signed-in user ---------------------------------------------------
    def ArtifactStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._forward(request, context, self.up.ArtifactStatus)

    def Interrupt(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._forward(request, context, self.up.Interrupt)

    def ReleaseExecute(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._forward(request, context, self.up.ReleaseExecute)

    def ReleaseSession(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._forward(request, context, self.up.ReleaseSession)

    def CloneSession(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._forward(request, context, self.up.CloneSession)

    def GetStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._forward(request, context, self.up.GetStatus)

    # -- plumbing ----------------------------------------------------------------------------
    def _guard_schema(self, who: Principal, plan: pb.Plan) -> GuardedPlan:
        """An analysis (schema, explain) reads no rows: rewritten, refusals audited, no read
        event."""
        purpose = self.gw.cfg.purpose
        return PlanGuard(lambda sql: self.gw.access.rewrite(who, sql, purpose=purpose)).plan(plan)

    def _forward(self, request: Any, context: grpc.ServicerContext, call: Any) -> Any:
        req = _as_user(request, self._sign_in(context))
        return self._unary(context, lambda: call(req, metadata=self._meta))

    def _sign_in(self, context: grpc.ServicerContext) -> Principal:
        return self._call(context, lambda: self.gw.authenticate(context))

    def _call(self, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except LakehouseError as exc:
            self._abort(context, exc)
            raise  # unreachable: abort raises

    def _abort(self, context: grpc.ServicerContext, exc: LakehouseError | Exception) -> None:
        assert isinstance(exc, LakehouseError)
        logger.info("Spark Connect request refused: %s", exc.code.id)
        code = _STATUS.get(exc.code.http_status, grpc.StatusCode.FAILED_PRECONDITION)
        if exc.code.http_status >= 500:
            code = grpc.StatusCode.UNAVAILABLE
        context.abort_with_status(rpc_status.to_status(_status(code, str(exc), exc.code.id)))

    def _unary(self, context: grpc.ServicerContext, call: Callable[[], T]) -> T:
        try:
            return call()
        except grpc.RpcError as err:
            context.abort_with_status(rpc_status.to_status(_sanitized(err)))
            raise  # unreachable

    def _stream(
        self,
        context: grpc.ServicerContext,
        call: Callable[[], Iterator[Any]],
        originals: dict[str, str] | None = None,
    ) -> Iterator[Any]:
        try:
            for response in call():
                if originals and response.HasField("sql_command_result"):
                    _restore_sql(response, originals)
                yield response
        except grpc.RpcError as err:
            context.abort_with_status(rpc_status.to_status(_sanitized(err)))


def _as_user(request: Any, who: Principal) -> Any:
    """A copy of ``request`` acting as ``who`` (the client's claimed user id is replaced)."""
    out = type(request)()
    out.CopyFrom(request)
    if any(f.name == "user_context" for f in out.DESCRIPTOR.fields):
        out.user_context.Clear()
        out.user_context.user_id = who.username
        out.user_context.user_name = who.username
    return out


def _restore_sql(response: Any, originals: dict[str, str]) -> None:
    relation = response.sql_command_result.relation
    if relation.HasField("sql") and relation.sql.query in originals:
        relation.sql.query = originals[relation.sql.query]


def _settable(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == a or (a.endswith(".") and key.startswith(a)) for a in allowed)


def _status(code: grpc.StatusCode, message: str, reason: str, **meta: str) -> Any:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="lakehouse", metadata=meta)
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(code=code.value[0], message=message, details=[detail])


def _sanitized(err: grpc.RpcError) -> Any:
    """Spark's failure as its error class and SQL state only: no message, parameters or stack
    trace (they can quote data), no error id (whose details would)."""
    call: Any = err
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    status = rpc_status.from_call(call) if hasattr(call, "trailing_metadata") else None
    info = error_details_pb2.ErrorInfo()
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    error_class = info.metadata.get("errorClass") or info.reason.rsplit(".", 1)[-1] or code.name
    exc = error(ErrorCode.CONNECT_FAILED, reason=error_class)
    meta = {
        k: info.metadata[k] for k in ("classes", "errorClass", "sqlState") if k in info.metadata
    }
    sanitized = _status(code, str(exc), info.reason or exc.code.id, **meta)
    if info.reason:  # the client names the exception by it (AnalysisException, ...)
        sanitized.details[0].Pack(
            error_details_pb2.ErrorInfo(reason=info.reason, domain=info.domain, metadata=meta)
        )
    return sanitized


def _plain_allowed(host: str) -> None:
    if not is_loopback(host):
        raise error(
            ErrorCode.CONFIG_INVALID,
            setting="spark_connect.tls",
            reason="plain gRPC (the bearer token in clear) is allowed on a loopback address only",
        )


def listener_tls(cfg: Settings) -> TlsFiles | None:
    """The gateway's certificate and key (``lakehouse serve``'s), or None for plain gRPC,
    refused (``LH-CFG-001``) unless the gateway listens on a loopback address."""
    from lakehouse.governance.tls import server_tls

    if not cfg.spark_connect.tls:
        _plain_allowed(cfg.spark_connect.host)
        return None
    return server_tls(cfg)


def connect_gateway(
    spark: SparkSession, cfg: Settings
) -> tuple[ConnectGateway, Callable[[], None]]:
    """The configured gateway (one journaled audit log for reads and refusals, the access and
    identity services, OIDC when ``security.oidc_*`` is set) and what to call when the
    process ends (ships the audit journal)."""
    from lakehouse.governance.access import access_service
    from lakehouse.governance.audit_journal import JournaledAuditLog, service_audit_log
    from lakehouse.governance.identity import identity_service

    tls = listener_tls(cfg)  # before anything is opened: a refused setting opens nothing
    log = service_audit_log(spark, cfg, f"spark-connect-{cfg.spark_connect.port}")
    gateway = ConnectGateway(
        spark,
        cfg.spark_connect,
        tls=tls,
        access=access_service(spark, cfg, audit=log),
        identity=identity_service(cfg, log),
        oidc=OidcVerifier(cfg.security) if cfg.security.oidc_issuer else None,
    )

    def close() -> None:
        gateway.stop()
        if isinstance(log, JournaledAuditLog):
            log.close()

    return gateway, close
