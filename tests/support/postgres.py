"""A real, throw-away PostgreSQL server for tests (initdb + pg_ctl on a free loopback port).

PostgreSQL refuses to run as root, so as root the cluster is owned by and run as the
``postgres`` system user that Debian's package creates. `.ci/run` installs the package
when the binaries are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Postgres:
    """A running server: where it listens and how to reach its test database."""

    host: str
    port: int
    user: str
    database: str

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"


def find_bindir() -> Path | None:
    """Folder holding initdb/pg_ctl (Debian keeps them out of PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_postgres(root: Path) -> Iterator[Postgres]:
    """Start a cluster under ``root``; stop it and remove nothing else on exit."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    owner = "postgres" if as_root else pwd.getpwuid(os.geteuid()).pw_name
    prefix = ["runuser", "-u", owner, "--"] if as_root else []
    data, sockets = root / "pgdata", root / "pgsock"
    for folder in (root, sockets):
        folder.mkdir(parents=True, exist_ok=True)
    if as_root:
        info = pwd.getpwnam(owner)
        for folder in (root, sockets):
            os.chown(folder, info.pw_uid, info.pw_gid)
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", owner, "--auth=trust", "-E", "UTF8",
        "--locale=C.UTF-8")  # fmt: skip
    run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(root / "pg.log"),
        "-o", f"-h 127.0.0.1 -p {port} -k {sockets} -F", "start")  # fmt: skip
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", owner, "lakehouse")
        yield Postgres("127.0.0.1", port, owner, "lakehouse")
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True, timeout=120, check=False)  # fmt: skip
