"""A real Spark standalone cluster on this machine: one master and N workers (JVM processes
started with pyspark's own ``spark-class``, as ``sbin/start-master.sh`` would), stopped on exit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyspark


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive_workers(webui: int) -> int:
    """ALIVE workers the master's web UI reports (0 when it does not answer yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=2) as r:
            state = json.load(r)
    except OSError:
        return 0
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


@contextmanager
def standalone_cluster(
    root: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g"
) -> Iterator[str]:
    """Start the cluster under ``root`` (logs, work folders); yield its ``spark://`` URL."""
    home = Path(pyspark.__file__).parent
    spark_class = str(home / "bin" / "spark-class")
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_NO_DAEMONIZE": "1",
    }
    (root / "logs").mkdir(parents=True, exist_ok=True)
    port, webui = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        log = (root / "logs" / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [spark_class, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        )

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
              "--port", str(port), "--webui-port", str(webui))  # fmt: skip
        for i in range(workers):
            work = root / f"worker-{i}"
            work.mkdir(parents=True, exist_ok=True)
            start(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", url, "--host",
                  "127.0.0.1", "--cores", str(cores), "--memory", memory, "--work-dir",
                  str(work), "--webui-port", str(_free_port()))  # fmt: skip
        deadline = time.monotonic() + 120
        while alive_workers(webui) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = {p.name: p.read_text()[-2000:] for p in (root / "logs").glob("*.log")}
                raise RuntimeError(f"standalone cluster did not come up: {logs}")
            time.sleep(0.5)
        yield url
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
