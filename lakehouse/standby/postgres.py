"""PostgreSQL streaming replication of the server databases: status and metrics.

Where the MLflow backend store and the Hive metastore live in PostgreSQL, they replicate
with PostgreSQL's own streaming replication to a hot standby (``infra/postgres``: the
primary's settings, the standby's set-up script; docs/operations.md has the runbook). The
Delta tables ship with :mod:`lakehouse.standby.ship`; these databases do not.

This module reads the replication state the servers report and turns it into figures:

- on the primary, :func:`replicas` reads ``pg_stat_replication`` (one row per connected
  standby: state, sync state, bytes not yet replayed, replay lag);
- on a standby, :func:`standby` reads the recovery state (in recovery or promoted, the
  last replayed transaction's commit time);
- :func:`render` writes both in the Prometheus text format, beside the Delta shipper's
  metrics (:mod:`lakehouse.standby.metrics`).

Connection strings carry credentials: they are never logged or put into an error message
(errors name the server by host and port only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lakehouse.errors import ErrorCode, error
from lakehouse.standby.metrics import label_value, number

#: What the primary reports per standby (PostgreSQL 10+ columns).
_REPLICAS_SQL = """
select application_name,
       state,
       sync_state,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint,
       coalesce(extract(epoch from replay_lag), 0)::float8,
       coalesce(extract(epoch from flush_lag), 0)::float8
  from pg_stat_replication
 order by application_name
"""

_STANDBY_SQL = """
select pg_is_in_recovery(),
       pg_last_xact_replay_timestamp(),
       case when pg_is_in_recovery()
            then extract(epoch from now() - pg_last_xact_replay_timestamp()) end::float8
"""


@dataclass(frozen=True)
class Replica:
    """One standby as the primary sees it (``pg_stat_replication``)."""

    name: str  #: application_name: primary.conf's synchronous_standby_names refers to it
    state: str  #: streaming, catchup, startup, backup or stopping
    sync_state: str  #: sync, potential, quorum or async
    bytes_behind: int  #: WAL the primary wrote that the standby has not replayed yet
    replay_lag_s: float  #: time from a commit on the primary to its replay on the standby
    flush_lag_s: float  #: time to the standby's flush (what a synchronous commit waits for)

    @property
    def healthy(self) -> bool:
        """Streaming, and synchronous (a failover to it loses no acknowledged commit)."""
        return self.state == "streaming" and self.sync_state in ("sync", "quorum")


@dataclass(frozen=True)
class StandbyState:
    """A server's own view: still replaying (a standby) or promoted."""

    in_recovery: bool
    last_replay_at: datetime | None  #: commit time of the last transaction replayed
    #: seconds since that commit; grows while the primary is idle, so alert on the
    #: primary's replay lag and use this one only when the primary is unreachable
    since_last_replay_s: float | None


def _query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            return list(conn.execute(sql).fetchall())
    except psycopg.Error as exc:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        where = f"{info.get('host', 'local socket')}:{info.get('port', 5432)}"
        raise error(
            ErrorCode.PG_REPLICATION_UNREACHABLE, name=where, reason=type(exc).__name__
        ) from None


def replicas(dsn: str) -> list[Replica]:
    """The standbys connected to the primary at ``dsn`` (empty: none is connected)."""
    return [
        Replica(str(n), str(s), str(ss), int(b), float(r), float(f))
        for n, s, ss, b, r, f in _query(dsn, _REPLICAS_SQL)
    ]


def standby(dsn: str) -> StandbyState:
    """The recovery state of the server at ``dsn``."""
    ((in_recovery, last, since),) = _query(dsn, _STANDBY_SQL)
    return StandbyState(bool(in_recovery), last, None if since is None else float(since))


def render(primary: list[Replica] | None, own: StandbyState | None = None) -> str:
    """Prometheus text (0.0.4) of the primary's replicas and/or a server's own state.

    - ``lakehouse_pg_replica_replay_lag_seconds{replica}`` and ``..._flush_lag_seconds``
    - ``lakehouse_pg_replica_bytes_behind{replica}``
    - ``lakehouse_pg_replica_streaming{replica,sync_state}``: 1 while streaming
    - ``lakehouse_pg_replicas_healthy``: standbys streaming synchronously (alert when 0)
    - ``lakehouse_pg_in_recovery``: 1 on a standby, 0 on a primary or a promoted standby
    - ``lakehouse_pg_seconds_since_last_replay``: on a standby
    """
    lines: list[str] = []

    def family(name: str, help_text: str, rows: list[tuple[str, object]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {number(value)}" for labels, value in rows)  # type: ignore[arg-type]

    if primary is not None:

        def per(attr: str) -> list[tuple[str, object]]:
            return [(f'{{replica="{label_value(r.name)}"}}', getattr(r, attr)) for r in primary]

        family(
            "lakehouse_pg_replica_replay_lag_seconds",
            "Commit on the primary to replay on the standby.",
            per("replay_lag_s"),
        )
        family(
            "lakehouse_pg_replica_flush_lag_seconds",
            "Commit on the primary to flush on the standby.",
            per("flush_lag_s"),
        )
        family(
            "lakehouse_pg_replica_bytes_behind",
            "WAL bytes written on the primary and not yet replayed on the standby.",
            per("bytes_behind"),
        )
        family(
            "lakehouse_pg_replica_streaming",
            "1 while the standby streams WAL.",
            [
                (
                    f'{{replica="{label_value(r.name)}",sync_state="{label_value(r.sync_state)}"}}',
                    int(r.state == "streaming"),
                )
                for r in primary
            ],
        )
        family(
            "lakehouse_pg_replicas_healthy",
            "Standbys streaming synchronously; 0 means a failover could lose commits.",
            [("", sum(r.healthy for r in primary))],
        )
    if own is not None:
        family(
            "lakehouse_pg_in_recovery",
            "1 on a standby, 0 on a primary.",
            [("", int(own.in_recovery))],
        )
        if own.since_last_replay_s is not None:
            family(
                "lakehouse_pg_seconds_since_last_replay",
                "Seconds since the commit time of the last replayed transaction.",
                [("", own.since_last_replay_s)],
            )
    return "\n".join(lines) + "\n" if lines else ""
