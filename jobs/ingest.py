"""Bronze landing: every source's new landing files into Delta, exactly once, nothing lost.

``python -m jobs.ingest [--source NAME] [--reconcile]`` / ``lakehouse ingest [--source NAME]``.

Per source: list the folder (metadata only), take the files the manifest ``ops.landing_files``
does not hold, hash them in Spark, skip content landed before (duplicates), record an intent
per file to land (``ops.landing_intents``), split the rest into records and MERGE the
source's bronze table (keys: the file's SHA-256 and the record's index). Then, once for all
sources: ``bronze.quarantine`` (MERGE), the manifest (MERGE), and the run's reports in
``ops.ingest_runs`` (append). A parser may also emit *findings* (``finding`` true: an HL7
batch trailer whose count disagrees with the messages, see :mod:`lakehouse.sources.hl7v2`):
they go to the quarantine like bad records but are counted apart (``findings_quarantined``),
so records seen = landed + quarantined still holds. A run killed before the manifest commit
leaves its files unrecorded; the next run takes them again and its MERGEs find every record
already there, so the tables hold exactly the records of one clean run.

The MERGEs read only the stored rows that can match (ADR 0035): a file's records are
written after its intent, so none is older than the day before the earliest intent recorded
for its content. A run with nothing to replay reads a day or two of bronze, not the table.

The source ``his`` is the HIS database, extracted over JDBC by watermark with a
late-correction lookback (:mod:`jobs.ingest_his`). A HIS failure does not stop the file
sources: they land and the reports are written, then the run fails with the HIS's code.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import reduce
from typing import NamedTuple

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import ingest_his
from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.sources import cda, csv_rows, dicom, fhir, hl7v2, notes
from lakehouse.sources.encoding import charsets_enabled
from lakehouse.sources.files import (
    FileKey,
    decide_duplicates,
    discover,
    empty_file_records,
    list_landing,
    mark_duplicates,
    read_files,
)
from lakehouse.sources.records import landed_rows, quarantine_rows
from lakehouse.tables.bronze.csv_exports import CSV_ROWS
from lakehouse.tables.bronze.emr import EMR_CDA_DOCUMENTS
from lakehouse.tables.bronze.fhir import FHIR_RESOURCES
from lakehouse.tables.bronze.lis import LIS_HL7V2_MESSAGES
from lakehouse.tables.bronze.notes import NOTES_DOCUMENTS
from lakehouse.tables.bronze.pacs import PACS_DICOM_INSTANCES
from lakehouse.tables.bronze.quarantine import QUARANTINE
from lakehouse.tables.ops.ingest import INGEST_RUNS, LANDING_FILES, LANDING_INTENTS
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.versions import latest_version
from lakehouse.tables.writer import append, ensure_table, upsert

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFormat:
    """How one source system's files become bronze rows."""

    table: TableSpec
    parse: Callable[[DataFrame], DataFrame]
    columns: tuple[str, ...]


FORMATS: dict[str, SourceFormat] = {
    "lis": SourceFormat(LIS_HL7V2_MESSAGES, hl7v2.parse_messages, hl7v2.MESSAGE_COLUMNS),
    "emr": SourceFormat(EMR_CDA_DOCUMENTS, cda.parse_documents, cda.DOCUMENT_COLUMNS),
    "notes": SourceFormat(NOTES_DOCUMENTS, notes.parse_notes, notes.NOTE_COLUMNS),
    "pacs": SourceFormat(PACS_DICOM_INSTANCES, dicom.parse_instances, dicom.INSTANCE_COLUMNS),
    "fhir": SourceFormat(FHIR_RESOURCES, fhir.parse_resources, fhir.RESOURCE_COLUMNS),
    "csv": SourceFormat(CSV_ROWS, csv_rows.parse_rows, csv_rows.ROW_COLUMNS),
}
#: Sources that are databases, extracted by watermark (not landing folders).
DATABASES = ("his",)
SOURCES = (*FORMATS, *DATABASES)


@dataclass
class SourceReport:
    """What one run did for one source (also the row of ``ops.ingest_runs``)."""

    source_system: str
    files_seen: int = 0
    files_unchanged: int = 0
    files_landed: int = 0
    files_quarantined: int = 0
    files_duplicate: int = 0
    records_seen: int = 0
    records_landed: int = 0
    records_quarantined: int = 0
    records_unchanged: int = 0
    findings_quarantined: int = 0
    bytes_read: int = 0
    duration_s: float = 0.0


@dataclass
class IngestReport:
    """What a run did, source by source."""

    run_id: str
    sources: list[SourceReport] = field(default_factory=list)
    his: ingest_his.HisExtract | None = None

    def source(self, name: str) -> SourceReport:
        return next(s for s in self.sources if s.source_system == name)

    def counts(self) -> dict[str, int]:
        """Named counts for ``ops.job_runs`` (per source and in total)."""
        out: dict[str, int] = {}
        for s in self.sources:
            for key, value in asdict(s).items():
                if isinstance(value, int):
                    out[f"{s.source_system}.{key}"] = value
                    out[key] = out.get(key, 0) + value
        if self.his is not None:
            out.update(self.his.counts())
        return out


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    source: str | None = None,
    reconcile: bool | None = None,
) -> IngestReport:
    """Land the new files of ``source`` (default: every source in settings).

    ``reconcile`` (default ``his.reconcile_deletes``): after the HIS extraction, scan its
    tables' keys and write tombstones for deleted rows.
    """
    names = [source] if source else list(cfg.ingest.sources)
    for name in names:
        if name not in SOURCES:
            raise error(ErrorCode.UNKNOWN_SOURCE, name=name, names=", ".join(SOURCES))
    with job_run(spark, cfg, "ingest") as rec, charsets_enabled(spark):
        report = IngestReport(rec.run_id)
        ensure_table(spark, LANDING_FILES)
        _ensure_intents(spark)
        manifest = spark.table(LANDING_FILES.name)
        batches: list[_Batch] = []
        try:
            for name in names:
                if name == "his":
                    batch = _extract_his(spark, cfg, report, run_id=rec.run_id, reconcile=reconcile)
                else:
                    batch = _land_source(spark, cfg, name, manifest, run_id=rec.run_id)
                report.sources.append(batch.report)
                batches.append(batch)
            _finish(spark, batches, run_id=rec.run_id)
        finally:
            for batch in batches:
                batch.release()
        for key, value in report.counts().items():
            rec.count(key, value)
        if report.his is not None and report.his.failure is not None:
            # The other sources landed; the run still fails, with the HIS's own code.
            raise report.his.failure
    return report


def _extract_his(
    spark: SparkSession,
    cfg: Settings,
    report: IngestReport,
    *,
    run_id: str,
    reconcile: bool | None,
) -> _Batch:
    """The HIS database (jobs.ingest_his): its report in ops.ingest_runs terms."""
    t0 = time.perf_counter()
    batch = _Batch(SourceReport("his"), datetime.now(UTC))
    his = ingest_his.extract(spark, cfg, run_id=run_id, reconcile=reconcile)
    report.his = his
    r = batch.report
    r.records_seen = his.rows_read + sum(t.tombstones for t in his.tables)
    r.records_landed = his.rows_new
    r.records_unchanged = r.records_seen - r.records_landed
    r.duration_s = time.perf_counter() - t0
    logger.info("ingest his: %s", asdict(r))
    return batch


@dataclass
class _Batch:
    """One source's work in a run: its report, and what the shared tables still need."""

    report: SourceReport
    started_at: datetime
    quarantine: DataFrame | None = None
    manifest_rows: DataFrame | None = None
    #: The earliest day a stored record of this batch's files can carry (see _intend).
    replay_since: date | None = None
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


def _land_source(
    spark: SparkSession, cfg: Settings, name: str, manifest: DataFrame, *, run_id: str
) -> _Batch:
    """Discover, read and parse one source's new files; MERGE its bronze table."""
    fmt = FORMATS[name]
    t0 = time.perf_counter()
    batch = _Batch(SourceReport(name), datetime.now(UTC))
    report = batch.report
    folder = str(cfg.landing_root / name)
    found = discover(
        spark, list_landing(spark, folder), manifest, limit=cfg.ingest.max_files_per_run
    )
    report.files_seen, report.files_unchanged = found.files_seen, found.files_unchanged
    if found.new_files:
        root = _uri(spark, cfg)
        # Read and hashed once (the content is cached as read, never shuffled); duplicates
        # are decided on the driver from the files' keys.
        files = read_files(spark, found.new_files, source=name, root_uri=root)
        files = files.persist(StorageLevel.MEMORY_AND_DISK)
        batch.cached.append(files)
        keys = decide_duplicates(files, manifest)
        taken = [k for k in keys if k.duplicate_of is None]
        if taken:
            # Before any record of them is written: the bound of this run's MERGEs.
            batch.replay_since = _intend(spark, taken, run_id=run_id, source=name)
        files = mark_duplicates(files, keys)
        fresh = files.where(F.col("duplicate_of").isNull())
        parsed = fmt.parse(fresh.where(F.col("size_bytes") > 0))
        records = empty_file_records(fresh).unionByName(parsed, allowMissingColumns=True)
        # A finding (an HL7 trailer whose count disagrees) is quarantined but is no record.
        finding = F.col("finding") if "finding" in records.columns else F.lit(None)
        records = records.withColumn("finding", F.coalesce(finding, F.lit(False)))
        records = records.persist(StorageLevel.MEMORY_AND_DISK)
        batch.cached.append(records)
        # One row per file, computed once on the driver from one counting action: the
        # report's counts, the check of the keys and the manifest MERGE read them, and the
        # MERGE's source is a small local table (not a plan over the cached records).
        modified = {path: ms for path, _, ms in found.new_files}
        rows = _manifest_rows(keys, _file_counts(records), modified, run_id, source=name)
        batch.manifest_rows = _manifest_frame(spark, rows)
        clashes = _count(rows, report)
        if clashes:
            # A parser numbered two rows of one file alike: their keys would clash. Refused
            # before any commit, so the MERGEs below can take the keys as unique.
            raise error(
                ErrorCode.DUPLICATE_KEYS,
                table=fmt.table.name,
                count=clashes,
                keys=", ".join(fmt.table.keys),
            )
        if report.records_landed:
            # Insert-only: a replayed record keeps the lineage of the run that landed it.
            # Keys are unique by construction: the fresh files' SHA-256 differ (duplicates
            # are not parsed, empty files only quarantined) and each file's record indexes
            # were just counted distinct, so no per-key window shuffles the payloads.
            upsert(
                spark,
                fmt.table,
                _stamped(landed_rows(records, fmt.columns), run_id),
                insert_only=True,
                unique_keys=True,
                target_filter=_since(batch.replay_since),
            )
        if report.records_quarantined:
            batch.quarantine = _stamped(quarantine_rows(records), run_id)
    report.duration_s = time.perf_counter() - t0
    logger.info("ingest %s: %s", name, asdict(report))
    return batch


def _finish(spark: SparkSession, batches: list[_Batch], *, run_id: str) -> None:
    """After every bronze MERGE: quarantine, then the manifest, then the reports."""
    # Keys are unique by construction (see _land_source): quarantine rows are keyed by
    # file path, content and record index (paths differ across sources, indexes within a
    # file were counted distinct), manifest rows are one per listed file path.
    quarantine = [b.quarantine for b in batches if b.quarantine is not None]
    if quarantine:
        # Every batch with quarantine rows took files, so recorded their intents.
        days = [b.replay_since for b in batches if b.quarantine is not None]
        dated = [d for d in days if d is not None]
        upsert(
            spark,
            QUARANTINE,
            reduce(DataFrame.unionByName, quarantine),
            insert_only=True,
            unique_keys=True,
            target_filter=_since(min(dated)) if len(dated) == len(days) else None,
        )
    manifest = [b.manifest_rows for b in batches if b.manifest_rows is not None]
    if manifest:
        upsert(spark, LANDING_FILES, reduce(DataFrame.unionByName, manifest), unique_keys=True)
    rows = [{"run_id": run_id, "started_at": b.started_at, **asdict(b.report)} for b in batches]
    if rows:
        append(spark, INGEST_RUNS, spark.createDataFrame(rows, INGEST_RUNS.schema))


def _ensure_intents(spark: SparkSession) -> None:
    """Create ``ops.landing_intents``. While it holds no intent (a new lakehouse, or the
    first run of a version that records intents), every file whose records bronze or the
    quarantine already hold gets one, dated by its first record: replays and re-deliveries
    of files landed before intents existed are then bounded like any other. One scan of the
    tables' lineage columns, once; an empty append marks it done."""
    ensure_table(spark, LANDING_INTENTS)
    if (latest_version(spark, LANDING_INTENTS.name) or 0) > 0:
        return
    specs = [f.table for f in FORMATS.values()] + [QUARANTINE]
    stored = [
        spark.table(spec.name).select(
            F.col("ingest_run_id").alias("run_id"),
            "source_system",
            "file_path",
            "file_sha256",
            "ingested_at",
        )
        for spec in specs
        if spark.catalog.tableExists(spec.name)
    ]
    if not stored:
        return  # nothing landed yet: the first run's own intents come first
    files = (
        reduce(DataFrame.unionByName, stored)
        .groupBy("file_sha256", "file_path", "source_system")
        .agg(
            F.coalesce(F.min("run_id"), F.lit("before-intents")).alias("run_id"),
            # A row without a time bounds nothing: the earliest instant makes it read all.
            F.coalesce(F.min("ingested_at"), F.timestamp_seconds(F.lit(0))).alias("started_at"),
        )
    )
    append(spark, LANDING_INTENTS, files)


def _intend(spark: SparkSession, taken: list[FileKey], *, run_id: str, source: str) -> date:
    """Record an intent for each file about to be landed, then return the earliest day a
    stored record of their content can carry: the day before the earliest intent recorded
    for it (this run's included; the day before, in case the session's time zone moved).

    A record is written after its file's intent, by this run or by one that died before
    its manifest commit, so it is dated no earlier. Matched by content (bronze keys are
    content and index), and for empty files by path too (every empty file has one hash).
    """
    rows = [(run_id, source, k.path, k.sha256) for k in taken]
    intents = spark.createDataFrame(
        rows, "run_id string, source_system string, file_path string, file_sha256 string"
    ).withColumn("started_at", F.current_timestamp())
    append(spark, LANDING_INTENTS, intents)
    wanted = spark.createDataFrame(
        sorted({(k.sha256, None if k.size > 0 else k.path) for k in taken}, key=str),
        "want_sha256 string, want_path string",
    )
    stored = spark.table(LANDING_INTENTS.name)
    match = (stored["file_sha256"] == wanted["want_sha256"]) & (
        wanted["want_path"].isNull() | (stored["file_path"] == wanted["want_path"])
    )
    row = (
        stored.join(F.broadcast(wanted), match, "left_semi")
        .agg(F.date_sub(F.to_date(F.min("started_at")), 1).alias("since"))
        .first()
    )
    since: date | None = None if row is None else row["since"]
    assert since is not None, "this run's own intents were just appended"
    return since


def _since(day: date | None) -> str | None:
    """The MERGE's bound on stored rows: those of ``day`` or later (``None``: no bound)."""
    return None if day is None else f"t.ingest_date >= DATE'{day.isoformat()}'"


def _stamped(df: DataFrame, run_id: str) -> DataFrame:
    now = F.current_timestamp()
    return df.select(
        "*",
        F.lit(run_id).alias("ingest_run_id"),
        now.alias("ingested_at"),
        F.to_date(now).alias("ingest_date"),
    )


@dataclass(frozen=True)
class _FileCounts:
    """One file's records: landed, quarantined, findings, and rows beyond its distinct
    record indexes (zero unless a parser numbered two rows, records or findings, alike)."""

    landed: int = 0
    quarantined: int = 0
    findings: int = 0
    index_clashes: int = 0


def _file_counts(records: DataFrame) -> dict[tuple[str, str], _FileCounts]:
    """Per (file path, SHA-256): its :class:`_FileCounts` (one Spark action; one row per
    file reaches the driver, as the listing did)."""
    record = ~F.col("finding")
    per_file = records.groupBy("file_path", "file_sha256").agg(
        F.sum((record & F.col("error_name").isNull()).cast("long")).alias("landed"),
        F.sum((record & F.col("error_name").isNotNull()).cast("long")).alias("quarantined"),
        F.sum(F.col("finding").cast("long")).alias("findings"),
        (F.count(F.lit(1)) - F.count_distinct("record_index")).alias("index_clashes"),
    )
    return {
        (r["file_path"], r["file_sha256"]): _FileCounts(
            int(r["landed"] or 0),
            int(r["quarantined"] or 0),
            int(r["findings"] or 0),
            int(r["index_clashes"] or 0),
        )
        for r in per_file.collect()
    }


class _ManifestRow(NamedTuple):
    """The ``ops.landing_files`` columns a run computes on the driver for one new file (the
    rest are added in Spark), and ``index_clashes`` (not a manifest column)."""

    file_path: str
    file_sha256: str
    source_system: str
    institution_code: str
    size_bytes: int
    modified_ms: int
    status: str
    duplicate_of: str | None
    records_landed: int
    records_quarantined: int
    findings_quarantined: int
    run_id: str
    index_clashes: int


_MANIFEST_ROW = (
    "file_path string, file_sha256 string, source_system string, institution_code string, "
    "size_bytes long, modified_ms long, status string, duplicate_of string, "
    "records_landed long, records_quarantined long, findings_quarantined long, run_id string, "
    "index_clashes long"
)


def _manifest_rows(
    keys: list[FileKey],
    counts: dict[tuple[str, str], _FileCounts],
    modified_ms: dict[str, int],
    run_id: str,
    *,
    source: str,
) -> list[_ManifestRow]:
    """One manifest row per new file: its status and record counts."""
    out = []
    for k in keys:
        c = counts.get((k.path, k.sha256), _FileCounts())
        if k.duplicate_of is not None:
            status = "duplicate"
        elif c.landed == 0 and c.quarantined > 0:
            status = "quarantined"
        else:
            status = "landed"
        out.append(
            _ManifestRow(
                k.path,
                k.sha256,
                source,
                k.institution,
                k.size,
                modified_ms[k.path],
                status,
                k.duplicate_of,
                c.landed,
                c.quarantined,
                c.findings,
                run_id,
                c.index_clashes,
            )
        )
    return out


def _manifest_frame(spark: SparkSession, rows: list[_ManifestRow]) -> DataFrame:
    """The manifest rows as the MERGE takes them (a local table: nothing is recomputed)."""
    return spark.createDataFrame(rows, _MANIFEST_ROW).select(
        "file_path",
        "file_sha256",
        "source_system",
        "institution_code",
        "size_bytes",
        F.timestamp_millis("modified_ms").alias("modified_at"),
        "status",
        "duplicate_of",
        "records_landed",
        "records_quarantined",
        "findings_quarantined",
        "run_id",
        F.current_timestamp().alias("recorded_at"),
    )


def _count(rows: list[_ManifestRow], report: SourceReport) -> int:
    """Fill the report's file and record counts from the manifest rows; return the rows
    whose record index repeats within their file (zero when sound)."""
    status = [r.status for r in rows]
    report.files_landed = status.count("landed")
    report.files_quarantined = status.count("quarantined")
    report.files_duplicate = status.count("duplicate")
    report.records_landed = sum(r.records_landed for r in rows)
    report.records_quarantined = sum(r.records_quarantined for r in rows)
    report.records_seen = report.records_landed + report.records_quarantined
    report.findings_quarantined = sum(r.findings_quarantined for r in rows)
    report.bytes_read = sum(r.size_bytes for r in rows)
    return sum(r.index_clashes for r in rows)


def _uri(spark: SparkSession, cfg: Settings) -> str:
    """The landing root as the file system qualifies paths (file:/..., hdfs://..., s3a://...)."""
    jvm = spark._jvm
    assert jvm is not None
    jvm_path = jvm.org.apache.hadoop.fs.Path(str(cfg.landing_root))
    fs = jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())
    return str(fs.makeQualified(jvm_path).toString())


def describe(report: IngestReport) -> str:
    """One line per source: files and records."""
    lines = [f"ingest run {report.run_id}:"]
    for s in report.sources:
        lines.append(
            f"  {s.source_system:<6} files seen={s.files_seen} new landed={s.files_landed} "
            f"quarantined={s.files_quarantined} duplicate={s.files_duplicate} | records "
            f"seen={s.records_seen} landed={s.records_landed} "
            f"quarantined={s.records_quarantined}"
            + (f" | envelope findings={s.findings_quarantined}" if s.findings_quarantined else "")
            + f" | {s.duration_s:.1f}s"
        )
    if report.his is not None:
        for t in report.his.tables:
            lines.append(
                f"    his.{t.table:<13} read={t.rows_read} new versions={t.rows_new} "
                f"tombstones={t.tombstones} watermark={t.high_watermark or '-'}"
                + (f" FAILED {t.error_code}" if t.error_code else "")
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobs.ingest [--source NAME]``."""
    parser = argparse.ArgumentParser(prog="jobs.ingest", description=__doc__)
    parser.add_argument("--source", help=f"land only this source ({', '.join(SOURCES)})")
    parser.add_argument(
        "--reconcile",
        action="store_true",
        default=None,
        help="after the HIS extraction, write tombstones for rows deleted at the source",
    )
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    return run_entrypoint(
        lambda cfg: describe(
            run(build_spark(cfg), cfg, source=args.source, reconcile=args.reconcile)
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
