"""The Spark Connect server behind the gateway: started in this process's JVM, on a
loopback port, with a random pre-shared token only the gateway holds (docs/adr/0033).

It runs in the same JVM as the gateway's Spark session, so it shares its catalog (one
embedded Derby metastore admits one JVM) and its settings (Delta, the hospital's zone).
Clients never reach it: it listens on 127.0.0.1 and refuses any request without the token;
the gateway hides the token from the notebooks' ``spark.conf`` calls. The JVM holds one
such server: the first call starts it, later calls get the same one.
"""

from __future__ import annotations

import secrets
import socket
import threading
from dataclasses import dataclass

from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, error

#: The server's address: loopback only (the gateway is the way in).
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Upstream:
    """Where the gateway forwards guarded requests, and the token it forwards them with."""

    port: int
    token: str = ""

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"


_lock = threading.Lock()
_running: Upstream | None = None


def start_upstream(spark: SparkSession) -> Upstream:
    """The Spark Connect server of this JVM, started on a free loopback port if needed."""
    global _running
    with _lock:
        if _running is not None:
            return _running
        jvm = spark.sparkContext._jvm
        sc = spark.sparkContext._jsc.sc()
        assert jvm is not None
        token, port = secrets.token_urlsafe(32), _free_port()
        conf = sc.conf()  # the context's live configuration, which the server reads
        conf.set("spark.connect.grpc.binding.address", HOST)
        conf.set("spark.connect.grpc.binding.port", str(port))
        conf.set("spark.connect.grpc.port.maxRetries", "0")
        conf.set("spark.connect.authenticate.token", token)
        try:
            jvm.org.apache.spark.sql.connect.service.SparkConnectService.start(sc)
        except Exception as exc:  # py4j wraps the JVM's bind failure
            raise error(
                ErrorCode.CONNECT_LISTEN_FAILED, url=f"{HOST}:{port}", reason=type(exc).__name__
            ) from exc
        _running = Upstream(port, token)
        return _running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])
