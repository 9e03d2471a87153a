"""Environment for a lakehouse process a test starts beside its own Spark session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lakehouse_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without LAKEHOUSE_* values, plus a small local Spark.

    ``settings`` are further LAKEHOUSE_* variables by their name after the prefix, e.g.
    ``SPARK__MASTER="local[2]"``; they override the defaults here.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    defaults = {
        "HOME": str(REPO),
        "DATA_DIR": str(data_dir),
        "SPARK__MASTER": "local[1]",
        "SPARK__SHUFFLE_PARTITIONS": "2",  # tiny data: 16 partitions only cost tasks
        "SPARK__UI_ENABLED": "false",
        "SPARK__DRIVER_MEMORY": "1g",
    }
    env.update({f"LAKEHOUSE_{k}": v for k, v in {**defaults, **settings}.items()})
    return env


def free_port() -> int:
    """A loopback port nothing listens on now (for a server the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, n: int = 4000) -> str:
    """The last ``n`` characters of a process's log, for a failure message."""
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def start_serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``lakehouse serve --port PORT`` with ``env``, output to ``log``, in its own process
    group (Python and its JVM), so the caller can signal or kill both."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lakehouse_cli.main", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip


def create_analyst(env: dict[str, str], password: str) -> None:
    """``lakehouse accounts create ana --role analyst --institution H1`` in ``env``."""
    made = subprocess.run(
        [sys.executable, "-m", "lakehouse_cli.main", "accounts", "create", "ana", "--role",
         "analyst", "--institution", "H1", "--password-stdin"],
        input=password + "\n", env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]


@contextmanager
def listening_command(
    command: str, env: dict[str, str], log: Path, ready: str, *, timeout_s: float = 300
) -> Iterator[float]:
    """``lakehouse COMMAND`` in its own process group, output to ``log``; yields the
    seconds until ``ready`` appeared in the log, then stops it with SIGTERM (killed after 60
    s) and checks that it exited 0 saying ``stopped``."""
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lakehouse_cli.main", command],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        while ready not in log_tail(log):
            assert proc.poll() is None, log_tail(log)
            assert time.perf_counter() - started < timeout_s, log_tail(log)
            time.sleep(0.5)
        yield time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log_tail(log)
    assert "stopped" in log_tail(log)
