"""Silver: turn bronze changes into the conformed, coded clinical model, incrementally.

``python -m jobs.silver [--full] [--bronze TABLE]`` / ``lakehouse silver``.

Per bronze table (``lakehouse.silver.registry.SOURCES``, in order): read what changed since
the version recorded in ``ops.silver_progress`` (Delta change data feed; the whole table
on a first run, with ``--full``, or when the feed cannot be read across a schema change),
run the source's transform, find the patient of rows that only know their encounter,
add standard codes, canonical units and value domains (``lakehouse.silver.standardize``),
and MERGE each non-empty silver table on its keys, newest ``source_updated_at`` winning.
Records a transform rejects go to ``ops.silver_rejects`` with their code. The
encounter -> patient lookup is built once and cached, and built again only after a MERGE
changed ``silver.encounter``. Unmapped codes are kept (cached) until the run's tables are
done, then go to the terminology review queue in one MERGE; progress is recorded after
that, in one MERGE, for every table the run processed. A killed run therefore records no
progress and the next run redoes its tables: their MERGEs find the rows already there
(``volatile`` run columns aside, nothing is rewritten) and their unmapped codes are found
again. A run that fails with an error first queues the codes and records the progress of
the tables it finished. Last, rows written before their encounter was known get their
patient (``fill``).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import reduce

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.governance.directory import refresh_patient_directory
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.silver.registry import SOURCES, SilverSource
from lakehouse.silver.standardize import (
    queue_unmapped,
    standardize,
    unmapped_codes,
    unmapped_condition,
)
from lakehouse.tables.ops.silver import SILVER_PROGRESS, SILVER_REJECTS
from lakehouse.tables.registry import all_specs
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.versions import require_version
from lakehouse.tables.writer import ensure_table, fill, upsert

logger = logging.getLogger(__name__)

#: Tables written first within a source, so later tables of the batch find the patient.
_FIRST = ("silver.patient", "silver.encounter")
_ENCOUNTER = "silver.encounter"
_PROGRESS_SCHEMA = (
    "bronze_table string, bronze_version long, mode string, rows_read long, run_id string"
)


@dataclass
class BronzeReport:
    """What one run did with one bronze table."""

    bronze_table: str
    mode: str = "unchanged"
    from_version: int | None = None
    to_version: int | None = None
    rows_read: int = 0
    rejects: int = 0
    written: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0


@dataclass
class SilverReport:
    run_id: str
    bronze: list[BronzeReport] = field(default_factory=list)
    patients_filled: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.bronze:
            out["rows_read"] = out.get("rows_read", 0) + b.rows_read
            out["rejects"] = out.get("rejects", 0) + b.rejects
            for table, n in b.written.items():
                out[f"{table}.written"] = out.get(f"{table}.written", 0) + n
        for table, n in self.patients_filled.items():
            out[f"{table}.patients_filled"] = n
        return out


def silver_specs() -> dict[str, TableSpec]:
    return {s.name: s for s in all_specs() if s.layer == "silver"}


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    full: bool = False,
    bronze: Sequence[str] | None = None,
) -> SilverReport:
    """Process the bronze changes since the last run (every bronze table by default)."""
    sources = list(SOURCES)
    if bronze:
        known = {s.bronze_table for s in SOURCES}
        for name in bronze:
            if name not in known:
                raise error(
                    ErrorCode.SILVER_UNKNOWN_BRONZE, name=name, names=", ".join(sorted(known))
                )
        sources = [s for s in SOURCES if s.bronze_table in set(bronze)]
    specs = silver_specs()
    with job_run(spark, cfg, "silver") as rec:
        report = SilverReport(rec.run_id)
        ensure_table(spark, SILVER_PROGRESS)
        ensure_table(spark, SILVER_REJECTS)
        done = {
            r["bronze_table"]: r["bronze_version"]
            for r in spark.table(SILVER_PROGRESS.name).collect()  # one row per bronze table
        }
        state = _RunState(spark, rec.run_id)
        try:
            try:
                for src in sources:
                    if not spark.catalog.tableExists(src.bronze_table):
                        continue
                    last = None if full else done.get(src.bronze_table)
                    report.bronze.append(_process(spark, src, last, specs, state))
            except Exception:
                # Keep what the finished tables did; the error is what the run reports.
                try:
                    state.flush()
                except Exception:
                    logger.exception("silver: could not record the finished tables' progress")
                raise
            state.flush()
            t0 = time.perf_counter()
            report.patients_filled = _fill_patients(spark, specs, state)
            logger.info(
                "silver fill: %s in %.1fs", report.patients_filled, time.perf_counter() - t0
            )
            # The row policies' patient directory follows the encounters (docs/security.md).
            refresh_patient_directory(spark)
        finally:
            state.close()
        for key, value in report.counts().items():
            rec.count(key, value)
    return report


class _RunState:
    """What the bronze tables of one run share: the cached encounter -> patient lookup,
    and the unmapped codes and progress rows that wait for the end of the run."""

    def __init__(self, spark: SparkSession, run_id: str) -> None:
        self.spark = spark
        self.run_id = run_id
        self._lookup: DataFrame | None = None
        self._codes: list[DataFrame] = []
        self._progress: list[tuple[str, int, str, int, str]] = []

    def encounter_patients(self) -> DataFrame | None:
        """The lookup of :func:`_encounter_patients`, cached until ``silver.encounter`` changes."""
        if self._lookup is None:
            lookup = _encounter_patients(self.spark)
            if lookup is None:
                return None
            self._lookup = lookup.persist(StorageLevel.MEMORY_AND_DISK)
        return self._lookup

    def encounters_changed(self) -> None:
        if self._lookup is not None:
            self._lookup.unpersist()
            self._lookup = None

    def keep_codes(self, codes: DataFrame) -> None:
        """Cache ``codes`` (read from a batch that is about to be dropped) for :meth:`flush`."""
        codes = codes.persist(StorageLevel.MEMORY_AND_DISK)
        if codes.count():  # materializes the whole cache
            self._codes.append(codes)
        else:
            codes.unpersist()

    def done(self, bronze_table: str, version: int, mode: str, rows_read: int) -> None:
        self._progress.append((bronze_table, version, mode, rows_read, self.run_id))

    def flush(self) -> None:
        """Queue the kept unmapped codes, then record the progress (after every MERGE)."""
        t0 = time.perf_counter()
        frames, tables = len(self._codes), len(self._progress)
        if self._codes:
            queue_unmapped(self.spark, self._codes)
            for df in self._codes:
                df.unpersist()
            self._codes = []
        if self._progress:
            progress = self.spark.createDataFrame(self._progress, _PROGRESS_SCHEMA).withColumn(
                "processed_at", F.current_timestamp()
            )
            upsert(self.spark, SILVER_PROGRESS, progress)
            self._progress = []
        logger.info(
            "silver: unmapped codes of %d tables queued, progress of %d bronze tables "
            "recorded in %.1fs",
            frames,
            tables,
            time.perf_counter() - t0,
        )

    def close(self) -> None:
        self.encounters_changed()
        for df in self._codes:
            df.unpersist()
        self._codes = []


def _process(
    spark: SparkSession,
    src: SilverSource,
    last: int | None,
    specs: dict[str, TableSpec],
    state: _RunState,
) -> BronzeReport:
    t0 = time.perf_counter()
    run_id = state.run_id
    rep = BronzeReport(src.bronze_table, from_version=last)
    version = require_version(spark, src.bronze_table)
    rep.to_version = version
    if last is not None and last >= version:
        return rep
    batch, rep.mode = _read(spark, src.bronze_table, last, version)
    batch = batch.persist(StorageLevel.MEMORY_AND_DISK)
    cached = [batch]
    try:
        rep.rows_read = batch.count()
        if rep.rows_read:
            widen = src.load_widen()
            if widen is not None:
                whole = _version(spark, src.bronze_table, version)
                batch = widen(batch, whole)
            out = src.load()(batch)
            order = sorted(
                out.rows, key=lambda t: (t not in _FIRST, _FIRST.index(t) if t in _FIRST else 0, t)
            )
            for table in order:
                spec = specs.get(table)
                if spec is None:
                    raise error(ErrorCode.SILVER_UNKNOWN_TABLE, name=src.bronze_table, table=table)
                rows = _stamped(out.rows[table], src.bronze_table, run_id)
                if "encounter_id" in spec.column_names and spec.person_key:
                    rows = _with_patient(rows, state.encounter_patients())
                rows = standardize(spark, table, rows).persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(rows)
                # One action caches the rows and says whether there is anything to write.
                n, unmapped = _sizes(table, rows)
                if not n:  # nothing to MERGE; the table still exists after the run
                    if not spark.catalog.tableExists(spec.name):
                        ensure_table(spark, spec)
                    rep.written[table] = 0
                    continue
                written = upsert(spark, spec, rows)
                rep.written[table] = written.inserted + written.updated
                if table == _ENCOUNTER and rep.written[table]:
                    state.encounters_changed()
                codes = unmapped_codes(table, rows)
                if codes is not None and unmapped:
                    state.keep_codes(codes)
            if out.rejects is not None:
                rejects = out.rejects.select(
                    F.lit(src.bronze_table).alias("bronze_table"),
                    "bronze_file_sha256",
                    F.coalesce("bronze_record_index", F.lit(-1)).alias("bronze_record_index"),
                    "error_code",
                    "error_name",
                    "detail",
                    "institution_code",
                    "source_system",
                    F.lit(run_id).alias("run_id"),
                    F.current_timestamp().alias("rejected_at"),
                ).persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(rejects)
                rep.rejects = rejects.count()
                if rep.rejects:
                    upsert(spark, SILVER_REJECTS, rejects)
        state.done(src.bronze_table, version, rep.mode, rep.rows_read)
    finally:
        for df in cached:
            df.unpersist()
    rep.duration_s = time.perf_counter() - t0
    logger.info("silver %s: %s", src.bronze_table, asdict(rep))
    return rep


def _sizes(table: str, rows: DataFrame) -> tuple[int, int]:
    """(rows, rows with an unmapped code) of cached ``rows`` for ``table``, in one action."""
    unmapped = unmapped_condition(table)
    row = rows.agg(
        F.count(F.lit(1)).alias("n"),
        (F.lit(0) if unmapped is None else F.count_if(unmapped)).alias("u"),
    ).first()
    assert row is not None
    return int(row["n"]), int(row["u"])


def _version(spark: SparkSession, table: str, version: int) -> DataFrame:
    """``table`` as of ``version`` (names come from the registry, never from input)."""
    return spark.sql(f"SELECT * FROM {table} VERSION AS OF {int(version)}")  # noqa: S608


def _read(spark: SparkSession, table: str, last: int | None, version: int) -> tuple[DataFrame, str]:
    """Rows added to ``table`` after version ``last`` up to ``version`` (all when None)."""
    snapshot = _version(spark, table, version)
    if last is None:
        return snapshot, "snapshot"
    try:
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", last + 1)
            .option("endingVersion", version)
            .table(table)
        )
        changes.schema  # noqa: B018 - resolve now: a feed across a schema change fails here
    except AnalysisException:
        logger.warning("silver %s: change feed unreadable from %d; reading the table", table, last)
        return snapshot, "snapshot"
    rows = changes.where(F.col("_change_type").isin("insert", "update_postimage")).drop(
        "_change_type", "_commit_version", "_commit_timestamp"
    )
    return rows, "changes"


def _stamped(df: DataFrame, bronze_table: str, run_id: str) -> DataFrame:
    cols = set(df.columns)
    deleted = (
        F.coalesce(F.col("is_deleted"), F.lit(False)) if "is_deleted" in cols else F.lit(False)
    )
    return (
        df.withColumn("bronze_table", F.lit(bronze_table))
        .withColumn("is_deleted", deleted)
        .withColumn("silver_run_id", F.lit(run_id))
        .withColumn("processed_at", F.current_timestamp())
    )


def _encounter_patients(spark: SparkSession) -> DataFrame | None:
    """(institution, encounter) -> the patient its encounter records name (one per visit)."""
    if not spark.catalog.tableExists("silver.encounter"):
        return None
    return (
        spark.table("silver.encounter")
        .where(F.col("patient_key").isNotNull() & ~F.col("is_deleted"))
        .groupBy("institution_code", "encounter_id")
        .agg(
            F.min("patient_key").alias("__patient_key"),
            F.min("patient_id").alias("__patient_id"),
        )
    )


def _with_patient(rows: DataFrame, lookup: DataFrame | None) -> DataFrame:
    """Rows without a patient get the patient of their encounter (``lookup``), when known."""
    if "encounter_id" not in rows.columns or lookup is None:
        return rows
    for c in ("patient_key", "patient_id"):
        if c not in rows.columns:
            rows = rows.withColumn(c, F.lit(None).cast("string"))
    joined = rows.join(lookup, ["institution_code", "encounter_id"], "left")
    return (
        joined.withColumn("patient_key", F.coalesce("patient_key", "__patient_key"))
        .withColumn("patient_id", F.coalesce("patient_id", "__patient_id"))
        .drop("__patient_key", "__patient_id")
    )


def _fill_patients(
    spark: SparkSession, specs: dict[str, TableSpec], state: _RunState
) -> dict[str, int]:
    """Rows stored before their encounter arrived get its patient now.

    Filling ``silver.encounter`` itself leaves the lookup as it was (a row gets the patient
    other rows of its visit already name), so one lookup serves every table.
    """
    lookup = state.encounter_patients()
    if lookup is None:
        return {}
    found: dict[str, DataFrame] = {}
    for name, spec in specs.items():
        if not spec.person_key or "encounter_id" not in spec.column_names:
            continue
        if not spark.catalog.tableExists(name):
            continue
        missing = spark.table(name).where(
            F.col("patient_key").isNull() & F.col("encounter_id").isNotNull()
        )
        found[name] = missing.join(lookup, ["institution_code", "encounter_id"]).select(
            *spec.keys,
            F.col("__patient_key").alias("patient_key"),
            F.col("__patient_id").alias("patient_id"),
        )
    if not found:
        return {}
    # One action says which tables have rows to fill (at most one row per table).
    probe = reduce(
        DataFrame.unionByName,
        [df.select(F.lit(name).alias("table")).limit(1) for name, df in found.items()],
    )
    todo = {r["table"] for r in probe.collect()}
    return {
        name: fill(spark, specs[name], df, ("patient_key", "patient_id")).updated
        for name, df in found.items()
        if name in todo
    }


def describe(report: SilverReport) -> str:
    lines = [f"silver run {report.run_id}:"]
    for b in report.bronze:
        written = ", ".join(f"{t.split('.', 1)[1]}={n}" for t, n in sorted(b.written.items()))
        lines.append(
            f"  {b.bronze_table:<30} {b.mode:<9} read={b.rows_read} rejects={b.rejects} "
            f"| {written or '-'} | {b.duration_s:.1f}s"
        )
    for table, n in sorted(report.patients_filled.items()):
        lines.append(f"  {table}: patient found through the encounter for {n} rows")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.silver [--full] [--bronze TABLE ...]``."""
    parser = argparse.ArgumentParser(prog="jobs.silver", description=__doc__)
    parser.add_argument("--full", action="store_true", help="reprocess every bronze row")
    parser.add_argument("--bronze", action="append", help="process only this bronze table")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    return run_entrypoint(
        lambda cfg: describe(run(build_spark(cfg), cfg, full=args.full, bronze=args.bronze))
    )


if __name__ == "__main__":
    raise SystemExit(main())
