"""The HIS database into bronze over JDBC: watermark extraction with a late-correction lookback.

Called by :func:`jobs.ingest.run` for the source ``his`` (``lakehouse ingest --source his``).
Per table of ``his.tables``:

1. ``since`` = the table's high watermark in ``ops.extract_watermarks`` minus
   ``ingest.lookback_days`` (first run: none, everything is read);
2. ``COUNT/MIN/MAX`` of the watermark above ``since`` (run by the database), then the rows
   above ``since`` in ``his.partitions`` parallel ranges of the watermark;
3. each row's ``row_sha256`` (canonical content) and lineage, then an insert-only MERGE into
   ``bronze.his_<table>`` on ``(institution_code, <pk>, row_sha256)``: versions already there
   (re-read by the lookback) write nothing, changed rows land as new versions.

After every table's bronze commit, one MERGE advances ``ops.extract_watermarks`` (never
backwards). A run killed before that re-reads the same rows next time and its MERGEs find
them already landed: exactly once. With ``reconcile`` (``--reconcile``,
``his.reconcile_deletes``) a key-only scan of each table follows, and every key whose
latest bronze version is not a tombstone but which the source no longer has gets an
``op='D'`` tombstone.

Failures: an unreachable database stops the HIS part (``LH-JDB-001``); a table that is
missing, lacks columns or has unreadable values is skipped (its watermark stays) and the
other tables go on. :func:`jobs.ingest.run` lands the other sources, records the reports
and then raises the first HIS error, so the run is recorded as failed with that code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.settings import Settings
from lakehouse.sources import jdbc
from lakehouse.tables.bronze.his import HIS_TABLES, SOURCE_SYSTEM, HisTable
from lakehouse.tables.ops.extract import EXTRACT_WATERMARKS
from lakehouse.tables.writer import ensure_table, upsert

logger = logging.getLogger(__name__)


@dataclass
class TableExtract:
    """What one run did for one HIS table."""

    table: str
    since: str | None = None
    rows_read: int = 0
    rows_new: int = 0
    tombstones: int = 0
    high_watermark: str | None = None
    error_code: str | None = None
    duration_s: float = 0.0


@dataclass
class HisExtract:
    """What one run did for the HIS: per table, and the first failure (if any)."""

    institution_code: str
    dialect: str = "?"
    tables: list[TableExtract] = field(default_factory=list)
    failure: LakehouseError | None = None
    skipped: bool = False

    @property
    def rows_read(self) -> int:
        return sum(t.rows_read for t in self.tables)

    @property
    def rows_new(self) -> int:
        return sum(t.rows_new + t.tombstones for t in self.tables)

    def counts(self) -> dict[str, int]:
        """Per-table counts for ``ops.job_runs`` (``his.<table>.rows_read`` ...)."""
        out: dict[str, int] = {}
        for t in self.tables:
            for key in ("rows_read", "rows_new", "tombstones"):
                out[f"{SOURCE_SYSTEM}.{t.table}.{key}"] = int(getattr(t, key))
        return out

    def table(self, name: str) -> TableExtract:
        return next(t for t in self.tables if t.table == name)


def source_of(cfg: Settings) -> jdbc.JdbcSource:
    """The HIS database of ``cfg`` (URL and credentials stay inside the returned object)."""
    h = cfg.his
    return jdbc.jdbc_source(
        cfg.his_jdbc_url,
        setting="his.jdbc_url",
        user=h.user,
        password=h.password.get_secret_value() if h.password else None,
        driver=h.driver,
        fetch_size=h.fetch_size,
        properties=h.properties,
    )


def _tables(cfg: Settings) -> list[HisTable]:
    unknown = [t for t in cfg.his.tables if t not in HIS_TABLES]
    if unknown:
        raise error(ErrorCode.JDBC_TABLE_UNKNOWN, table=unknown[0], names=", ".join(HIS_TABLES))
    return [HIS_TABLES[t] for t in cfg.his.tables]


def extract(
    spark: SparkSession, cfg: Settings, *, run_id: str, reconcile: bool | None = None
) -> HisExtract:
    """Extract every table of ``cfg.his.tables`` (see the module doc). Never raises a
    :class:`LakehouseError`: the first one is in the result's ``failure``."""
    out = HisExtract(cfg.his.institution_code)
    reconcile = cfg.his.reconcile_deletes if reconcile is None else reconcile
    try:
        tables = _tables(cfg)
        src = source_of(cfg)
        out.dialect = src.dialect
        if cfg.his.jdbc_url is None and not (cfg.data_dir / "synthetic/his/his.sqlite").is_file():
            # Like an absent landing folder: no HIS configured and no synthetic one built.
            logger.info("his: no HIS database configured and no synthetic HIS; nothing to do")
            out.skipped = True
            return out
        jdbc.probe(spark, src)
    except LakehouseError as exc:
        out.failure = exc
        return out
    logger.info("his: extracting %d tables from a %s database", len(tables), src.dialect)
    ensure_table(spark, EXTRACT_WATERMARKS)
    marks = _watermarks(spark, cfg)
    landed: list[TableExtract] = []
    done: list[HisTable] = []
    for t in tables:
        report = TableExtract(t.source_table, since=marks.get(t.source_table, (None, None))[1])
        out.tables.append(report)
        t0 = time.perf_counter()
        try:
            _extract_table(spark, cfg, src, t, report, run_id=run_id)
        except LakehouseError as exc:
            report.error_code = exc.code.id
            out.failure = out.failure or exc
            logger.warning("his %s: %s", t.source_table, exc)
            if exc.code is ErrorCode.JDBC_UNREACHABLE:
                break
            continue
        finally:
            report.duration_s = time.perf_counter() - t0
        report.high_watermark = max(
            (m for m in (marks.get(t.source_table, (None, None))[0], report.high_watermark) if m),
            default=None,
        )
        landed.append(report)
        done.append(t)
    if landed:
        _advance(spark, cfg, landed, run_id=run_id)  # only after the tables' bronze commits
    if reconcile:  # the tables extracted in this run (a failed one has nothing new)
        for t in done:
            report = out.table(t.source_table)
            try:
                report.tombstones = _reconcile_table(spark, cfg, src, t, run_id=run_id)
            except LakehouseError as exc:
                report.error_code = exc.code.id
                out.failure = out.failure or exc
                break
    for r in out.tables:
        logger.info(
            "his %s: since=%s read=%d new=%d tombstones=%d watermark=%s %.1fs%s",
            r.table,
            r.since,
            r.rows_read,
            r.rows_new,
            r.tombstones,
            r.high_watermark,
            r.duration_s,
            f" failed {r.error_code}" if r.error_code else "",
        )
    return out


def _watermarks(spark: SparkSession, cfg: Settings) -> dict[str, tuple[str, str]]:
    """Per table: (high watermark, high watermark - lookback) as wall-time strings.

    Computed and rendered by Spark in the session time zone (the database's wall times),
    never through Python datetimes. One row per table: a bounded collect.
    """
    days = cfg.ingest.lookback_days
    hw = F.col("high_watermark")
    rows = (
        spark.table(EXTRACT_WATERMARKS.name)
        .where(
            (F.col("source_system") == SOURCE_SYSTEM)
            & (F.col("institution_code") == cfg.his.institution_code)
            & hw.isNotNull()
        )
        .select(
            "source_table",
            F.date_format(hw, jdbc.TIMESTAMP_FORMAT).alias("hw"),
            F.date_format(hw - F.make_dt_interval(F.lit(days)), jdbc.TIMESTAMP_FORMAT).alias(
                "since"
            ),
        )
        .collect()
    )
    return {r["source_table"]: (r["hw"], r["since"]) for r in rows}


def _extract_table(
    spark: SparkSession,
    cfg: Settings,
    src: jdbc.JdbcSource,
    t: HisTable,
    report: TableExtract,
    *,
    run_id: str,
) -> None:
    wm = cfg.his.watermark_column
    if not spark.catalog.tableExists(t.spec.name):  # upsert evolves it when it writes
        ensure_table(spark, t.spec)  # an empty source table too: readers find it
    present = set(jdbc.source_columns(spark, src, t.source_table))
    needed = [c.name for c in t.source_columns]
    missing = [n for n in [*needed, wm] if n not in present]
    if missing or wm not in needed:
        raise error(
            ErrorCode.JDBC_COLUMNS_MISSING,
            table=t.source_table,
            columns=", ".join(dict.fromkeys(missing or [wm])),
            column=wm,
        )
    span = jdbc.bounds(spark, src, t.source_table, wm, report.since)
    if span.rows == 0:
        return
    raw = jdbc.read_rows(
        spark,
        src,
        t.source_table,
        t.source_columns,
        watermark=wm,
        since=report.since,
        span=span,
        partitions=cfg.his.partitions,
    )
    typed = jdbc.typed_rows(raw, t.source_columns)
    now = F.current_timestamp()
    rows = typed.select(
        F.lit(cfg.his.institution_code).alias("institution_code"),
        jdbc.row_sha256(t.source_columns).alias("row_sha256"),
        F.lit("U").alias("op"),
        F.lit(SOURCE_SYSTEM).alias("source_system"),
        F.lit(t.source_table).alias("source_table"),
        F.col(wm).alias("source_updated_at"),
        F.lit(run_id).alias("ingest_run_id"),
        now.alias("ingested_at"),
        F.to_date(now).alias("ingest_date"),
        *[c.name for c in t.source_columns],
        jdbc.UNREADABLE,
    )
    # Versions bronze holds already (re-read by the lookback) are marked, so an unchanged
    # table costs one pass and no MERGE; one read of the source serves checks and MERGE.
    keys = list(t.spec.keys)
    known = (
        spark.table(t.spec.name)
        .where(F.col("institution_code") == cfg.his.institution_code)
        .select(*keys, F.lit(True).alias("lh_known"))
    )
    rows = rows.join(known, keys, "left").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bad = F.size(jdbc.UNREADABLE) > 0
        stats = rows.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("lh_known").isNull().cast("long")).alias("new"),
            F.sum(bad.cast("long")).alias("bad"),
            F.first(F.when(bad, F.col(jdbc.UNREADABLE)[0]), ignorenulls=True).alias("bad_col"),
            F.date_format(F.max(wm), jdbc.TIMESTAMP_FORMAT).alias("high"),
        ).first()
        assert stats is not None
        if stats["bad"]:
            column = str(stats["bad_col"])
            raise error(
                ErrorCode.JDBC_VALUE_UNREADABLE,
                table=t.source_table,
                count=int(stats["bad"]),
                column=column,
                expected=t.spec.column(column).dataType.simpleString(),
            )
        report.rows_read = int(stats["rows"])
        report.high_watermark = stats["high"]
        if stats["new"]:
            new = rows.where(F.col("lh_known").isNull()).drop("lh_known", jdbc.UNREADABLE)
            report.rows_new = upsert(spark, t.spec, new, insert_only=True).inserted
    finally:
        rows.unpersist()


def _advance(
    spark: SparkSession, cfg: Settings, tables: list[TableExtract], *, run_id: str
) -> None:
    """One MERGE of the tables' new high watermarks (after their bronze commits)."""
    rows = [
        (
            SOURCE_SYSTEM,
            cfg.his.institution_code,
            t.table,
            t.high_watermark,
            t.rows_read,
            t.rows_new,
        )
        for t in tables
    ]
    df = spark.createDataFrame(
        rows,
        "source_system string, institution_code string, source_table string, "
        "high_watermark string, rows_read long, rows_new long",
    )
    upsert(
        spark,
        EXTRACT_WATERMARKS,
        df.select(
            "source_system",
            "institution_code",
            "source_table",
            # Parsed by Spark in the session time zone: the database's wall time.
            F.to_timestamp("high_watermark").alias("high_watermark"),
            "rows_read",
            "rows_new",
            F.lit(run_id).alias("run_id"),
            F.current_timestamp().alias("recorded_at"),
        ),
    )


def latest_versions(spark: SparkSession, t: HisTable, institution_code: str) -> DataFrame:
    """The latest bronze version of every key of ``t`` (tombstones included)."""
    order = Window.partitionBy(t.pk).orderBy(
        F.col("ingested_at").desc(),
        F.col("source_updated_at").desc_nulls_last(),
        F.col("row_sha256"),
    )
    return (
        spark.table(t.spec.name)
        .where(F.col("institution_code") == institution_code)
        .withColumn("lh_rank", F.row_number().over(order))
        .where("lh_rank = 1")
        .drop("lh_rank")
    )


def _reconcile_table(
    spark: SparkSession, cfg: Settings, src: jdbc.JdbcSource, t: HisTable, *, run_id: str
) -> int:
    """Tombstones for keys whose latest version is live in bronze but gone from the source."""
    keys = jdbc.read_keys(
        spark,
        src,
        t.source_table,
        t.pk,
        watermark=cfg.his.watermark_column,
        partitions=cfg.his.partitions,
    )
    live = latest_versions(spark, t, cfg.his.institution_code).where(F.col("op") == "U")
    gone = live.join(keys, t.pk, "left_anti")
    now = F.current_timestamp()
    tombstones = gone.select(
        "institution_code",
        t.pk,
        # Deterministic per deleted version: a rerun writes the same tombstone once.
        F.sha2(F.concat_ws(jdbc.FIELD_SEPARATOR, F.lit("D"), "row_sha256"), 256).alias(
            "row_sha256"
        ),
        F.lit("D").alias("op"),
        "source_system",
        "source_table",
        F.lit(None).cast("timestamp").alias("source_updated_at"),
        F.lit(run_id).alias("ingest_run_id"),
        now.alias("ingested_at"),
        F.to_date(now).alias("ingest_date"),
    )
    return upsert(spark, t.spec, tombstones, insert_only=True).inserted
