"""The MLflow tracking server the project starts and owns (``lakehouse mlflow serve``).

One ``mlflow server`` process (and the worker processes it forks, all in one new process
group) with the model registry on the backend store (SQLite by default, PostgreSQL by
settings) and proxied artifacts (``--artifacts-destination``: clients never need the artifact
store's credentials). :class:`TrackingServer` starts it, waits for ``/health``, and stops the
whole process group: no orphans. docs/adr/0016-mlflow-tracking-server.md says why.

The backend store URI may carry a database password: it goes to the server in its
environment, never on the command line, and every message and log line shows it redacted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings
from lakehouse.tracking.client import ping, server_url

logger = logging.getLogger(__name__)

#: Backend store schemes the project supports (SQLAlchemy dialects MLflow migrates).
#: psycopg 3 is the locked PostgreSQL driver, so a plain postgresql:// (psycopg2) is refused.
SUPPORTED_BACKENDS = ("sqlite", "postgresql+psycopg")


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user info replaced by ``***`` (nothing else changed)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def backend_store_uri(cfg: Settings) -> str:
    """The backend store URI of ``cfg`` (secret: log only :func:`redact_uri` of it)."""
    given = cfg.mlflow.backend_store_uri
    if given is None:
        return f"sqlite:///{cfg.data_dir / 'mlflow' / 'mlflow.db'}"
    uri = given.get_secret_value()
    scheme = urlsplit(uri).scheme
    if scheme not in SUPPORTED_BACKENDS:
        raise error(
            ErrorCode.MLFLOW_SETTINGS_INVALID,
            setting="mlflow.backend_store_uri",
            reason=f"scheme {scheme or '(none)'} is not one of {', '.join(SUPPORTED_BACKENDS)}",
        )
    if scheme == "sqlite" and not uri.startswith("sqlite:////"):
        raise error(
            ErrorCode.MLFLOW_SETTINGS_INVALID,
            setting="mlflow.backend_store_uri",
            reason="a SQLite backend store needs an absolute path (sqlite:////abs/mlflow.db)",
        )
    return uri


def artifacts_destination(cfg: Settings) -> str:
    """Where the server keeps artifacts: the setting, a relative path under ``data_dir``."""
    given = cfg.mlflow.artifacts_destination
    if given is None:
        return str(cfg.data_dir / "mlflow" / "artifacts")
    if "://" in given or given.startswith("/"):
        return given
    return str(cfg.data_dir / given)


class TrackingServer:
    """The ``mlflow server`` process described by settings; a context manager.

    ``with TrackingServer(cfg) as server:`` starts it and waits for ``/health``; leaving the
    block stops it. ``server.url`` is the tracking URI its clients use.
    """

    def __init__(self, cfg: Settings, *, log_file: Path | None = None) -> None:
        self._cfg = cfg
        self._backend = backend_store_uri(cfg)
        self._artifacts = artifacts_destination(cfg)
        self.host = cfg.mlflow.host
        self.port = cfg.mlflow.port
        self.url = server_url(cfg)
        self.log_file = log_file or cfg.data_dir / "mlflow" / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        """The settings the server was started with (clients built from them reach it)."""
        return self._cfg

    @property
    def backend(self) -> str:
        """The backend store URI, redacted (safe to print)."""
        return redact_uri(self._backend)

    @property
    def artifacts(self) -> str:
        """The artifacts destination, redacted (safe to print)."""
        return redact_uri(self._artifacts)

    @property
    def pid(self) -> int | None:
        """Process id (and process group id) of the running server; None when stopped."""
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        """The server's command line (the backend store URI is not on it: see the module)."""
        mlflow_cli = [sys.executable, "-m", "mlflow", "server"]
        cmd = [*mlflow_cli, "--artifacts-destination", self._artifacts, "--host", self.host,
               "--port", str(self.port), "--workers", str(self._cfg.mlflow.workers)]  # fmt: skip
        if self._cfg.mlflow.allowed_hosts:
            cmd += ["--allowed-hosts", ",".join(self._cfg.mlflow.allowed_hosts)]
        return cmd

    def check_backend(self, *, timeout_s: int = 10) -> None:
        """Connect to the backend store once (SQLite: make its folder), or raise LH-MLF-003."""
        if self._backend.startswith("sqlite:"):
            Path(self._backend.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            return
        import sqlalchemy

        engine = sqlalchemy.create_engine(
            self._backend,
            connect_args={"connect_timeout": timeout_s},
            poolclass=sqlalchemy.pool.NullPool,
        )
        try:
            with engine.connect():
                pass
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise error(
                ErrorCode.MLFLOW_BACKEND_UNREACHABLE,
                url=self.backend,
                reason=self._safe(str(getattr(exc, "orig", None) or type(exc).__name__)),
            ) from None
        finally:
            engine.dispose()

    def start(self) -> TrackingServer:
        """Start the server and wait for ``/health``; LH-MLF-001/002/003 when that fails."""
        if self._process is not None:
            return self
        if ping(self.url):
            raise error(ErrorCode.MLFLOW_ALREADY_RUNNING, url=self.url)
        self.check_backend()
        if "://" not in self._artifacts:
            Path(self._artifacts).mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            with self.log_file.open("ab") as log:
                self._process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.log_file.parent,  # MLflow's scratch files land there, not in cwd
                    env=self._cfg.mlflow.server_environment(self._backend),
                    start_new_session=True,  # its own process group: stop() signals all of it
                )
            logger.info(
                "mlflow server starting: pid %d, %s, backend %s, artifacts %s",
                self._process.pid, self.url, self.backend, self.artifacts,
            )  # fmt: skip
            if self._wait_healthy(started + self._cfg.mlflow.start_timeout_s):
                took = time.monotonic() - started
                logger.info("mlflow server up on %s in %.1fs", self.url, took)
                return self
        except BaseException:  # Ctrl-C or SIGTERM while waiting: leave no server behind
            self.stop()
            raise
        self.stop()
        raise error(
            ErrorCode.MLFLOW_START_FAILED,
            url=self.url,
            reason=f"no answer on /health within {self._cfg.mlflow.start_timeout_s:.0f}s",
        )

    def _wait_healthy(self, deadline: float) -> bool:
        """Poll /health until ``deadline``; False on timeout, LH-MLF-001 when it exits."""
        assert self._process is not None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                _signal_group(self._process.pid, signal.SIGKILL)  # a worker it left behind
                self._process = None
                raise error(
                    ErrorCode.MLFLOW_START_FAILED,
                    url=self.url,
                    reason=f"the process exited with status {code}: {self._last_log_line()}",
                )
            if ping(self.url):
                return True
            time.sleep(0.25)
        return False

    def stop(self, *, timeout_s: float = 30) -> bool:
        """SIGTERM the server's process group, SIGKILL what is left after ``timeout_s``.

        Returns False when no server was running.
        """
        process, self._process = self._process, None
        if process is None:
            return False
        group = process.pid  # start_new_session: the group id is the leader's pid
        _signal_group(group, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("mlflow server did not stop in %.0fs; killing it", timeout_s)
        # Workers that outlived the leader (or a leader that ignored SIGTERM) go too.
        deadline = time.monotonic() + timeout_s
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(group):
            _signal_group(group, signal.SIGKILL)
        process.wait(timeout=timeout_s)
        logger.info("mlflow server on %s stopped", self.url)
        return True

    def wait(self) -> int:
        """Block until the server exits (foreground ``serve``); its exit status."""
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> TrackingServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _safe(self, text: str) -> str:
        """``text`` with the backend's password removed, shortened to one line."""
        password = urlsplit(self._backend).password
        if password:
            text = text.replace(password, "***")
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        return (lines[0] if lines else "no detail")[:300]

    def _last_log_line(self) -> str:
        try:
            tail = self.log_file.read_bytes()[-4000:].decode("utf-8", "replace")
        except OSError:
            return "no server log"
        lines = [line for line in tail.splitlines() if line.strip()]
        return self._safe(lines[-1]) if lines else "empty server log"


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
