"""PostgreSQL streaming replication of the server databases, on two real servers.

The primary runs with ``infra/postgres/primary.conf``; the standby is built by
``infra/postgres/setup-standby.sh`` (base backup, slot, recovery settings), exactly as the
runbook (docs/operations.md) does it. Under a continuous write load the standby follows;
the primary is then killed (``pg_ctl stop -m immediate``: no shutdown checkpoint, like a
crash) while a writer is committing, the standby is promoted, and every transaction the
primary acknowledged is on it (synchronous replication), and it takes writes.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.standby.postgres import render, replicas, standby
from lakehouse_cli.main import main
from tests.support.postgres import (
    Postgres,
    as_owner,
    find_bindir,
    owned_folder,
    running_postgres,
    serving,
)

INFRA = Path(__file__).resolve().parents[3] / "infra" / "postgres"
NAME = "lakehouse_standby"


def _dsn(port: int, user: str) -> str:
    return f"host=127.0.0.1 port={port} user={user} dbname=lakehouse"


def _wait(what: str, check: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pair() -> Iterator[tuple[Postgres, Path, Path]]:
    """A primary with the infra settings, its data folder, and the folder for its standby."""
    if find_bindir() is None:
        pytest.fail("PostgreSQL server binaries not found: `make postgres` installs them")
    root = owned_folder(Path(tempfile.mkdtemp(prefix="lakehouse-pgrep-")))
    try:
        with running_postgres(
            owned_folder(root / "primary"),
            conf=(f"include '{INFRA / 'primary.conf'}'",),
            hba=("host replication all 127.0.0.1/32 trust",),
        ) as primary:
            yield primary, root / "primary" / "pgdata", owned_folder(root / "standby")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_standby_follows_synchronously_and_a_promotion_loses_no_commit(
    pair: tuple[Postgres, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    primary, primary_data, standby_root = pair
    bindir = find_bindir()
    assert bindir is not None
    data = standby_root / "pgdata"
    as_owner(str(INFRA / "setup-standby.sh"), "127.0.0.1", str(primary.port), primary.user,
             str(data), NAME)  # fmt: skip
    assert (data / "standby.signal").exists()
    main_dsn = _dsn(primary.port, primary.user)
    with serving(data, standby_root) as port:
        copy_dsn = _dsn(port, primary.user)
        _wait(
            "the standby to stream", lambda: [r.state for r in replicas(main_dsn)] == ["streaming"]
        )
        assert not replicas(main_dsn)[0].healthy  # asynchronous until synchronous.sql runs
        assert main(["pg-replication", "--dsn", main_dsn]) == 1  # monitoring sees it
        with psycopg.connect(main_dsn, autocommit=True) as conn:
            script = (INFRA / "synchronous.sql").read_text(encoding="utf-8").splitlines()
            sql = "\n".join(line for line in script if not line.lstrip().startswith("--"))
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
        _wait("synchronous replication", lambda: [r.healthy for r in replicas(main_dsn)] == [True])
        (replica,) = replicas(main_dsn)
        assert (replica.name, replica.state, replica.sync_state) == (NAME, "streaming", "sync")
        assert standby(copy_dsn).in_recovery
        assert not standby(main_dsn).in_recovery

        with psycopg.connect(main_dsn, autocommit=True) as conn:
            conn.execute("create table registry (id int primary key, at timestamptz)")
        # a continuous load: each commit returns once the standby flushed it; the reader on
        # the standby notes when each row becomes visible there (replay)
        committed: dict[int, float] = {}
        seen: dict[int, float] = {}
        stop = threading.Event()

        def read() -> None:
            with psycopg.connect(copy_dsn, autocommit=True) as conn:
                while not stop.is_set():
                    row = conn.execute("select coalesce(max(id), 0) from registry").fetchone()
                    now = time.monotonic()
                    top = int(row[0]) if row else 0
                    for i in range(len(seen) + 1, top + 1):
                        seen[i] = now
                    time.sleep(0.005)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with psycopg.connect(main_dsn, autocommit=True) as conn:
            for i in range(1, 201):
                conn.execute("insert into registry values (%s, now())", (i,))
                committed[i] = time.monotonic()
        _wait("the standby to replay every row", lambda: len(seen) == 200)
        stop.set()
        reader.join(timeout=10)
        lags = sorted(seen[i] - committed[i] for i in committed)
        p99 = lags[int(0.99 * (len(lags) - 1))]
        print(f"postgres replay lag over 200 commits: p50 {lags[100]:.4f} s, p99 {p99:.4f} s")
        assert main(["pg-replication", "--dsn", main_dsn]) == 0
        assert f"{NAME}: streaming, sync, " in capsys.readouterr().out
        assert main(["pg-replication", "--dsn", copy_dsn]) == 0
        assert "standby: in recovery" in capsys.readouterr().out
        text = render(replicas(main_dsn), standby(copy_dsn))
        assert f'lakehouse_pg_replica_streaming{{replica="{NAME}",sync_state="sync"}} 1' in text
        assert "lakehouse_pg_replicas_healthy 1" in text
        assert "lakehouse_pg_in_recovery 1" in text

        # the primary crashes while a writer commits; every acknowledged commit survives
        acked: list[int] = []

        def write() -> None:
            try:
                with psycopg.connect(main_dsn, autocommit=True) as conn:
                    for i in range(1000, 100000):
                        conn.execute("insert into registry values (%s, now())", (i,))
                        acked.append(i)
            except psycopg.Error:
                return  # the primary went away mid-commit: that row was never acknowledged

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        _wait("the writer to commit", lambda: len(acked) >= 50)
        as_owner(str(bindir / "pg_ctl"), "-D", str(primary_data), "-m", "immediate", "stop")
        writer.join(timeout=30)
        assert not writer.is_alive()
        as_owner(str(bindir / "pg_ctl"), "-D", str(data), "-w", "promote")
        _wait("the promotion", lambda: not standby(copy_dsn).in_recovery)
        with psycopg.connect(copy_dsn, autocommit=True) as conn:
            present = {int(r[0]) for r in conn.execute("select id from registry where id >= 1000")}
            assert set(acked) <= present  # nothing acknowledged was lost
            assert len(present) - len(acked) <= 1  # at most the one commit in flight
            conn.execute("insert into registry values (0, now())")  # it takes writes
        with pytest.raises(LakehouseError) as info:
            replicas(main_dsn)  # the old primary is down: a catalogued error, no credentials
        assert info.value.code is ErrorCode.PG_REPLICATION_UNREACHABLE
        assert "password" not in str(info.value)
