"""The audit log as the Delta table ``audit.events``: chained appends and verification.

Appends are serialized by one lock per table in this process and, across processes, by
Delta's optimistic concurrency: an append is an insert-only MERGE that matches any stored
row after the writer's head (a blind append would never conflict, so two writers could fork
the chain). A writer whose cached head is stale inserts nothing or loses the commit race;
either way it re-reads the head, re-chains and retries. ``writer.append`` cannot do this: it is a
blind append (see docs/adr/0004).

:func:`verify` recomputes the chain in Spark without collecting the log: each row's hash is
recomputed in ``mapInArrow`` (SM3 is not a Spark SQL function), and each link is checked by
joining row ``seq`` with row ``seq + 1``; only the first broken ``seq`` reaches the driver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.audit import GENESIS, AuditEvent, chain, link
from lakehouse.settings import Settings
from lakehouse.tables.audit.events import AUDIT_EVENTS
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import RETRYABLE, ensure_table

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _table_lock(table: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(table, threading.Lock())


class DeltaAuditLog:
    """Chained appends to ``spec`` (default ``audit.events``); one writer per process."""

    def __init__(
        self,
        spark: SparkSession,
        *,
        algorithm: str = "sm3",
        spec: TableSpec = AUDIT_EVENTS,
        anchor: Path | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        self.spark = spark
        self.algorithm = algorithm
        self.spec = spec
        self.anchor = anchor
        self._lock = lock or _table_lock(spec.name)
        self._head: tuple[int, str] | None = None
        ensure_table(spark, spec)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last stored row, read from the table."""
        last = self.spark.table(self.spec.name).agg(F.max("seq").alias("m")).first()
        top = None if last is None else last["m"]
        if top is None:
            return 0, GENESIS
        row = self.spark.table(self.spec.name).where(F.col("seq") == top).select("hash").first()
        assert row is not None
        return int(top), str(row["hash"])

    def record(self, *events: AuditEvent) -> list[dict[str, Any]]:
        """Chain and store ``events`` in one commit; ``LH-SEC-009`` when that fails."""
        with self._lock:
            try:
                return self._record(events)
            except LakehouseError:
                raise
            except Exception as exc:
                logger.error("audit write to %s failed: %s", self.spec.name, type(exc).__name__)
                raise error(
                    ErrorCode.AUDIT_WRITE_FAILED, table=self.spec.name, reason=type(exc).__name__
                ) from exc

    def _record(self, events: tuple[AuditEvent, ...]) -> list[dict[str, Any]]:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            head = self._head or self.head()
            rows = chain(events, head, self.algorithm)
            try:
                inserted = self._merge(rows, head[0])
            except RETRYABLE:
                inserted = -1
            if inserted == len(rows):
                self._head = (rows[-1]["seq"], rows[-1]["hash"])
                self._write_anchor()
                return rows
            self._head = None  # stale head: another writer appended; re-read and re-chain
            logger.info("audit append lost a race (attempt %d); re-chaining", attempt)
            time.sleep(0.05 * attempt)
        raise error(
            ErrorCode.AUDIT_WRITE_FAILED, table=self.spec.name, reason="too many concurrent writers"
        )

    def _merge(self, rows: list[dict[str, Any]], after: int) -> int:
        """Insert ``rows`` unless their seq exists; returns the rows inserted."""
        source = self.spark.createDataFrame(rows, self.spec.schema)
        cols = {f"`{c}`": f"s.`{c}`" for c in self.spec.column_names}
        (
            DeltaTable.forName(self.spark, self.spec.name)
            .alias("t")
            # Any stored row after our head matches every source row, so a stale head
            # inserts nothing (all or nothing; `t.seq = s.seq` would insert a partial batch).
            .merge(source.alias("s"), f"t.seq > {int(after)}")
            .whenNotMatchedInsert(values=cols)  # type: ignore[arg-type]
            .execute()
        )
        # Count our own rows by seq and event id: the newest commit's metrics may be another
        # writer's, and a stale head inserts nothing without failing.
        seqs = [int(r["seq"]) for r in rows]
        ids = [str(r["event_id"]) for r in rows]
        return (
            self.spark.table(self.spec.name)
            .where(F.col("seq").between(min(seqs), max(seqs)) & F.col("event_id").isin(ids))
            .count()
        )

    def _write_anchor(self) -> None:
        """Keep (seq, hash) of the head outside the table: a rewritten chain or a cut tail
        no longer matches it."""
        if self.anchor is None or self._head is None:
            return
        self.anchor.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.anchor.with_suffix(".tmp")
        tmp.write_text(f"{self._head[0]} {self._head[1]}\n")
        tmp.replace(self.anchor)


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`: rows checked and the first broken seq (None: intact)."""

    table: str
    rows: int
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def _bad_hashes(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    # Python over whole Arrow batches: SM3 is not a Spark SQL function.
    for batch in batches:
        bad = [
            r["seq"]
            for r in batch.to_pylist()
            if link(r["hash_alg"], r["prev_hash"], r) != r["hash"]
        ]
        yield pa.RecordBatch.from_pydict({"seq": pa.array(bad, pa.int64())})


def verify(
    spark: SparkSession, spec: TableSpec = AUDIT_EVENTS, *, anchor: Path | None = None
) -> VerifyReport:
    """Recompute the chain of ``spec.name`` in Spark and report the first broken seq."""
    if not spark.catalog.tableExists(spec.name):
        raise error(ErrorCode.TABLE_NOT_FOUND, table=spec.name)
    log = spark.table(spec.name)
    cols = [F.unix_micros("ts").alias("ts") if c == "ts" else F.col(c) for c in spec.column_names]
    stats = log.agg(F.count("*").alias("n"), F.max("seq").alias("top")).first()
    assert stats is not None
    n, top = int(stats["n"]), int(stats["top"] or 0)
    cur = log.select("seq", "hash")
    nxt = log.select((F.col("seq") - 1).alias("seq"), F.col("prev_hash").alias("next_prev"))
    links = cur.join(nxt, "seq", "full_outer")
    checks = [
        (
            log.select(*cols).mapInArrow(_bad_hashes, "seq long"),
            "the row's content does not match its hash",
        ),
        (log.groupBy("seq").count().where("count > 1").select("seq"), "the seq appears twice"),
        (links.where(F.col("hash").isNull() & (F.col("seq") >= 1)).select("seq"), "missing row"),
        (
            links.where(F.col("next_prev").isNull() & (F.col("seq") < top)).select(
                (F.col("seq") + 1).alias("seq")
            ),
            "missing row",
        ),
        (
            links.where(F.col("hash") != F.col("next_prev")).select(
                (F.col("seq") + 1).alias("seq")
            ),
            "prev_hash does not match the previous row",
        ),
        (
            log.where((F.col("seq") == 1) & (F.col("prev_hash") != GENESIS)).select("seq"),
            "the chain does not start from the genesis hash",
        ),
    ]
    # One Spark job: the union of every check's broken seqs; only the smallest is collected.
    union = None
    for df, reason in checks:
        tagged = df.select(F.col("seq").cast("long").alias("seq"), F.lit(reason).alias("reason"))
        union = tagged if union is None else union.unionByName(tagged)
    assert union is not None
    worst = union.agg(F.min(F.struct("seq", "reason")).alias("m")).first()
    problems: list[tuple[int, str]] = []
    if worst is not None and worst["m"] is not None:
        problems.append((int(worst["m"]["seq"]), str(worst["m"]["reason"])))
    if n and top and log.where("seq = 1").limit(1).count() == 0:
        problems.append((1, "missing row"))
    if anchor is not None and anchor.exists():
        a_seq, a_hash = anchor.read_text().split()
        stored = log.where(F.col("seq") == int(a_seq)).select("hash").first()
        if stored is None or stored["hash"] != a_hash:
            problems.append((int(a_seq), "the row does not match the head anchor"))
    if not problems:
        return VerifyReport(spec.name, n)
    seq, reason = min(problems)
    return VerifyReport(spec.name, n, seq, reason)


def require_intact(report: VerifyReport) -> VerifyReport:
    """Raise ``LH-SEC-010`` for a broken chain."""
    if not report.ok:
        raise error(
            ErrorCode.AUDIT_CHAIN_BROKEN,
            table=report.table,
            seq=report.broken_seq,
            reason=report.reason,
        )
    return report


def anchor_path(cfg: Settings) -> Path:
    """Where the head anchor of ``audit.events`` is kept (outside the table's storage)."""
    return cfg.data_dir / "audit" / "events.head"


def audit_log(spark: SparkSession, cfg: Settings) -> DeltaAuditLog:
    """The configured ``audit.events`` log of this process."""
    return DeltaAuditLog(spark, algorithm=cfg.security.hash_algorithm, anchor=anchor_path(cfg))
