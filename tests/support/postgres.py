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


def _owner() -> tuple[str, list[str]]:
    """The user that owns and runs clusters, and the prefix that runs a command as it."""
    as_root = os.geteuid() == 0
    owner = "postgres" if as_root else pwd.getpwuid(os.geteuid()).pw_name
    return owner, (["runuser", "-u", owner, "--"] if as_root else [])


def as_owner(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[bytes]:
    """Run a PostgreSQL program as the cluster owner (checked)."""
    return subprocess.run([*_owner()[1], *args], check=True, capture_output=True, timeout=timeout)


def owned_folder(path: Path) -> Path:
    """``path`` created and owned by the cluster owner."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        info = pwd.getpwnam(_owner()[0])
        os.chown(path, info.pw_uid, info.pw_gid)
    return path


@contextmanager
def serving(data: Path, root: Path, port: int | None = None) -> Iterator[int]:
    """Start the cluster in ``data`` on a free loopback port (sockets and log under ``root``);
    stop it on exit (fast shutdown; an already stopped server is fine)."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    sockets = owned_folder(root / "pgsock")
    port = port or _free_port()
    as_owner(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l",
             str(root / f"{data.name}.log"), "-o", f"-h 127.0.0.1 -p {port} -k {sockets} -F",
             "start")  # fmt: skip
    try:
        yield port
    finally:
        subprocess.run([*_owner()[1], str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=120, check=False)  # fmt: skip


@contextmanager
def running_postgres(
    root: Path, *, conf: tuple[str, ...] = (), hba: tuple[str, ...] = ()
) -> Iterator[Postgres]:
    """Start a cluster under ``root`` (``conf`` lines appended to postgresql.conf, ``hba``
    lines to pg_hba.conf); stop it and remove nothing else on exit."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    owner = _owner()[0]
    data = owned_folder(root) / "pgdata"
    as_owner(str(bindir / "initdb"), "-D", str(data), "-U", owner, "--auth=trust", "-E", "UTF8",
             "--locale=C.UTF-8")  # fmt: skip
    for name, lines in (("postgresql.conf", conf), ("pg_hba.conf", hba)):
        if lines:
            with (data / name).open("a", encoding="utf-8") as f:
                f.write("\n" + "\n".join(lines) + "\n")
    with serving(data, root) as port:
        as_owner(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", owner,
                 "lakehouse")  # fmt: skip
        yield Postgres("127.0.0.1", port, owner, "lakehouse")
