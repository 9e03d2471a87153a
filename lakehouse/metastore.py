"""A Derby network server for the Hive metastore, so several processes share one catalog.

The embedded Derby metastore admits one JVM at a time. On a single machine where jobs, the
SQL endpoint and services run side by side, ``lakehouse metastore start`` serves the same
database (``<data_dir>/metastore_db``) over Derby's network protocol on loopback, and every
process sets ``LAKEHOUSE_METASTORE__KIND=derby-server``. Production uses PostgreSQL
(``kind=jdbc``); this server is the embedded platform's step between the two.

The server listens on ``metastore.derby_host`` (127.0.0.1 by default) without
authentication: it must never be bound to an address other hosts can reach.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lakehouse.environment import find_java
from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings

logger = logging.getLogger(__name__)

MAIN_CLASS = "org.apache.derby.drda.NetworkServerControl"


@dataclass(frozen=True)
class DerbyServer:
    """How to reach (and control) the Derby network server described by settings."""

    java: Path
    classpath: str
    host: str
    port: int
    home: Path

    def _control(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.java), "-cp", self.classpath, MAIN_CLASS, *command,
             "-h", self.host, "-p", str(self.port)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def ping(self) -> bool:
        """True when a server answers on host:port."""
        return self._control("ping").returncode == 0

    def start(self, *, wait_s: float = 60) -> subprocess.Popen[bytes]:
        """Start the server in the background and wait until it answers."""
        if self.ping():
            raise error(
                ErrorCode.CATALOG_UNAVAILABLE,
                name="derby-server",
                reason=f"a server already answers on {self.host}:{self.port}",
            )
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / "derby-server.log").open("ab")
        process = subprocess.Popen(
            [str(self.java), f"-Dderby.system.home={self.home}",
             "-Dderby.drda.host=" + self.host, "-cp", self.classpath, MAIN_CLASS,
             "start", "-h", self.host, "-p", str(self.port), "-noSecurityManager"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if self.ping():
                logger.info("derby metastore server up on %s:%d", self.host, self.port)
                return process
            time.sleep(0.5)
        process.kill()
        raise error(
            ErrorCode.CATALOG_UNAVAILABLE,
            name="derby-server",
            reason=f"the server did not answer on {self.host}:{self.port} within {wait_s:.0f}s",
        )

    def stop(self) -> bool:
        """Ask the server to shut down; False when none was running."""
        return self._control("shutdown").returncode == 0


def derby_server(cfg: Settings) -> DerbyServer:
    """The Derby server of ``cfg``: Spark's own Derby jars plus the cached network jars."""
    spark_jars = Path(str(resources.files("pyspark") / "jars"))
    jars = sorted(spark_jars.glob("derby*.jar")) + sorted(cfg.spark.jars_dir.glob("derby*.jar"))
    names = {p.name.split("-")[0] for p in jars}
    missing = sorted({"derby", "derbynet", "derbyshared", "derbytools"} - names)
    if missing:
        raise error(
            ErrorCode.JARS_MISSING,
            path=cfg.spark.jars_dir,
            names=", ".join(f"{m}-*.jar" for m in missing),
        )
    return DerbyServer(
        java=find_java(cfg).executable,
        classpath=":".join(str(p) for p in jars),
        host=cfg.metastore.derby_host,
        port=cfg.metastore.derby_port,
        home=cfg.data_dir,
    )
