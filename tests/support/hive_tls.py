"""Clients of the SQL endpoint over TLS: PyHive on a verifying TLS socket, and the Java
truststore the Hive JDBC driver (beeline) verifies the gateway's certificate with.

The same steps docs/operations.md ("SQL endpoint") gives analysts.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

from pyhive import hive
from thrift.transport.TSSLSocket import TSSLSocket

from lakehouse.governance.tls import MIN_VERSION

TRUSTSTORE_PASSWORD = "lakehouse-trust"  # protects nothing secret: the store holds a public cert


def client_context(cafile: Path) -> ssl.SSLContext:
    """Verifies the gateway's certificate and host name against ``cafile``, TLS 1.2+."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.minimum_version = MIN_VERSION
    return ctx


def connect_tls(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    cafile: Path | None = None,
    context: ssl.SSLContext | None = None,
) -> Any:
    """A PyHive connection over TLS: Thrift's TSSLSocket (verifying) under SASL PLAIN."""
    import thrift_sasl
    from pyhive.hive import get_installed_sasl

    assert (cafile is None) != (context is None), "cafile or context"
    ctx = context if context is not None else client_context(cafile)  # type: ignore[arg-type]
    sock = TSSLSocket(host, port, ssl_context=ctx, server_hostname=host)
    transport = thrift_sasl.TSaslClientTransport(
        lambda: get_installed_sasl(
            host=host, sasl_auth="PLAIN", service=None, username=username, password=password
        ),
        "PLAIN",
        sock,
    )
    return hive.connect(thrift_transport=transport)


def truststore(cert: Path, folder: Path) -> Path:
    """A JKS truststore holding ``cert`` (``keytool -importcert``; JDK 17), for the Hive
    JDBC driver's ``sslTrustStore=...;trustStorePassword=...``."""
    store = folder / "lakehouse-truststore.jks"
    store.unlink(missing_ok=True)
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-alias", "lakehouse-sql-endpoint",
         "-file", str(cert), "-keystore", str(store), "-storetype", "JKS",
         "-storepass", TRUSTSTORE_PASSWORD],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return store


def jdbc_url(host: str, port: int, store: Path) -> str:
    """The Hive JDBC URL of the gateway over TLS, verified with ``store``."""
    return (
        f"jdbc:hive2://{host}:{port}/default;ssl=true;sslTrustStore={store};"
        f"trustStorePassword={TRUSTSTORE_PASSWORD}"
    )
