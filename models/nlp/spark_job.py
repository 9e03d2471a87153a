"""The clinical NLP job: ``silver.note`` -> ``gold.note_nlp``, ``silver.note_deid``,
``silver.note_problem``, incrementally.

``python -m models.nlp.spark_job [--full]`` / ``lakehouse nlp [--full]``.

1. Which notes: the keys in ``silver.note``'s change data feed since the version recorded
   in ``ops.nlp_progress`` (every note on a first run, with ``--full``, when the feed
   cannot be read, or when the pipeline version changed), read as of one table version.
2. Live notes go through ``models.nlp.notes.process_batches`` in ``mapInArrow`` (one loaded
   pipeline and PHI analyzer per executor Python process): entities with assertion, the
   de-identified text, a status per note. Dates in the text move by the person's shift of
   the de-identified views (``governance.person_keys``, derived alike when not stored).
3. OMOP ids from ``ops.omop_ids`` (``assign_ids``: the note's natural key
   ``<institution>|<source system>|<note_id>``, an entity's ``<note key>|<start>|<end>|<label>``),
   concepts from the terminology service (``map_codes``; 0 when the pipeline gives no code
   or the code is unmapped).
4. Each output is made equal, per affected note, to what this run found (one MERGE each,
   ``replace_scoped``): changed entities updated, vanished ones and deleted notes' rows
   removed, unchanged rows not rewritten (a rerun commits nothing). Progress is written
   last, so a killed run redoes the same notes.

Nothing from a note's text is logged: counts, versions and codes only.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.entrypoint import run_entrypoint
from lakehouse.errors import ErrorCode, error
from lakehouse.gold.ids import assign_ids, natural_key
from lakehouse.governance.keys import deid_key
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.tables.gold.omop import NOTE_NLP
from lakehouse.tables.governance.person_keys import PERSON_KEYS
from lakehouse.tables.ops.nlp import NLP_PROGRESS
from lakehouse.tables.silver.documents import NOTE
from lakehouse.tables.silver.note_nlp import NOTE_DEID, NOTE_PROBLEM
from lakehouse.tables.versions import require_version
from lakehouse.tables.writer import WriteReport, ensure_tables, replace_scoped, upsert
from lakehouse.terminology.api import ATC, ICD10, LOINC, map_codes
from models.nlp.note_nlp import pipeline_version
from models.nlp.notes import ENTITY, NOTE_KEYS, RESULT_SCHEMA, process_batches
from models.nlp.pipeline import ner_model

logger = logging.getLogger(__name__)

SOURCE = NOTE.name
#: Code systems of the lexicon (lexicon.json ``system``) -> terminology vocabulary ids.
VOCABULARIES = {"ICD-10": ICD10, "LOINC": LOINC, "ATC": ATC}
_ENTITY_DDL = ", ".join(
    f"{f.name}:{'int' if f.type == ENTITY.field('start_char').type else 'string'}" for f in ENTITY
)
RESULT_DDL = (
    ", ".join(f"{k} string" for k in NOTE_KEYS)
    + ", nlp_status string, error_code string, nlp_system string, text_deid string, "
    + f"phi_replacements int, entities array<struct<{_ENTITY_DDL}>>"
)
assert len(RESULT_SCHEMA) == len(NOTE_KEYS) + 6


@dataclass
class NlpReport:
    """What one run did."""

    run_id: str
    mode: str = "unchanged"
    pipeline: str = ""
    from_version: int | None = None
    to_version: int | None = None
    notes_read: int = 0
    notes_processed: int = 0
    notes_removed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    entities: int = 0
    problems: int = 0
    written: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {
            "notes_read": self.notes_read,
            "notes_processed": self.notes_processed,
            "notes_removed": self.notes_removed,
            "entities": self.entities,
            "problems": self.problems,
        }
        out.update({f"status.{k}": v for k, v in self.statuses.items()})
        out.update({f"{t}.written": n for t, n in self.written.items()})
        return out


def run(spark: SparkSession, settings: Settings, *, full: bool = False) -> NlpReport:
    """Process the notes changed since the last run (every note with ``full``)."""
    t0 = time.perf_counter()
    with job_run(spark, settings, "nlp") as rec:
        report = NlpReport(rec.run_id, pipeline=pipeline_version(ner_model(settings)[0]))
        ensure_tables(spark, [NLP_PROGRESS, NOTE_NLP, NOTE_DEID, NOTE_PROBLEM])
        if not spark.catalog.tableExists(SOURCE):
            report.mode = "no_source"
            return report
        done = (
            spark.table(NLP_PROGRESS.name)
            .where(F.col("source_table") == SOURCE)
            .select("source_version", "nlp_system")
            .first()
        )
        version = require_version(spark, SOURCE)
        last = None
        if done is not None and not full and done["nlp_system"] == report.pipeline:
            last = int(done["source_version"])
        report.from_version, report.to_version = last, version
        if last is not None and last >= version:
            return _finish(report, t0)
        notes, scope, report.mode = _changed_notes(spark, last, version)
        _process(spark, settings, notes, scope, report, run_id=rec.run_id)
        progress = spark.createDataFrame(
            [(SOURCE, version, report.mode, report.notes_read, report.pipeline, rec.run_id)],
            "source_table string, source_version long, mode string, notes_read long, "
            "nlp_system string, run_id string",
        ).withColumn("processed_at", F.current_timestamp())
        upsert(spark, NLP_PROGRESS, progress)
        _finish(report, t0)
        for k, v in report.counts().items():
            rec.count(k, v)
    return report


def _finish(report: NlpReport, t0: float) -> NlpReport:
    report.duration_s = time.perf_counter() - t0
    logger.info("nlp run %s: %s", report.run_id, asdict(report))
    return report


def _changed_notes(
    spark: SparkSession, last: int | None, version: int
) -> tuple[DataFrame, DataFrame, str]:
    """(note rows as of ``version`` to look at, note keys whose outputs are rebuilt, mode)."""
    snapshot = spark.sql(f"SELECT * FROM {SOURCE} VERSION AS OF {int(version)}")  # noqa: S608
    if last is not None:
        try:
            feed = (
                spark.read.format("delta")
                .option("readChangeFeed", "true")
                .option("startingVersion", last + 1)
                .option("endingVersion", version)
                .table(SOURCE)
            )
            keys = feed.select(*NOTE_KEYS).distinct()
            keys.schema  # noqa: B018 - resolve now: a feed across a schema change fails here
            return snapshot.join(keys, list(NOTE_KEYS), "left_semi"), keys, "changes"
        except AnalysisException:
            logger.warning(
                "nlp: change feed of %s unreadable from %d; reading it all", SOURCE, last
            )
    # Everything: also the notes that vanished from silver.note since they were processed.
    stored = spark.table(NOTE_DEID.name).select(*NOTE_KEYS)
    scope = snapshot.select(*NOTE_KEYS).unionByName(stored).distinct()
    return snapshot, scope, "snapshot"


def _shifts(spark: SparkSession, notes: DataFrame) -> DataFrame:
    """Each note's person date shift, where ``governance.person_keys`` holds it."""
    if not spark.catalog.tableExists(PERSON_KEYS.name):
        return notes.withColumn("shift_days", F.lit(None).cast("int"))
    keys = spark.table(PERSON_KEYS.name).select(
        F.col("person_id").alias("patient_key"), F.col("shift_days").cast("int")
    )
    return notes.join(keys, "patient_key", "left")


def _process(
    spark: SparkSession,
    settings: Settings,
    notes: DataFrame,
    scope: DataFrame,
    report: NlpReport,
    *,
    run_id: str,
) -> None:
    scope = scope.persist(StorageLevel.MEMORY_AND_DISK)
    live = notes.where(~F.coalesce(F.col("is_deleted"), F.lit(False)))
    parts = max(spark.sparkContext.defaultParallelism, 1)
    inputs = _shifts(spark, live).select(
        *NOTE_KEYS, "patient_key", "language", "note_text", "shift_days"
    )
    # mapInArrow, not a UDF per row: spaCy, jieba and Presidio are Python, and a whole
    # batch per call lets each executor process keep one loaded pipeline (models.nlp.notes).
    results = inputs.repartition(parts, *NOTE_KEYS).mapInArrow(
        process_batches(deid_key(settings), settings.deid.shift_max_days, ner_model(settings)),
        RESULT_DDL,
    )
    context = live.select(
        *NOTE_KEYS,
        "patient_key",
        "encounter_id",
        "note_type",
        "language",
        "recorded_at",
        "recorded_at_source",
        "source_updated_at",
    )
    done = (
        results.join(context, list(NOTE_KEYS))
        .withColumn("natural_key", natural_key(*NOTE_KEYS))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        report.notes_read = scope.count()
        for row in done.groupBy("nlp_status").agg(F.count("*").alias("n")).collect():
            report.statuses[str(row["nlp_status"])] = int(row["n"])
        report.notes_processed = sum(report.statuses.values())
        report.notes_removed = report.notes_read - report.notes_processed
        failed = report.statuses.get("failed", 0)
        if failed:
            logger.warning("%s", error(ErrorCode.NLP_NOTE_FAILED, count=failed, table=SOURCE))
        _write(spark, done, scope, report, run_id=run_id)
    finally:
        done.unpersist()
        scope.unpersist()


def _vocabulary(system: Column) -> Column:
    pairs = [F.lit(x) for kv in VOCABULARIES.items() for x in kv]
    return F.create_map(*pairs)[system]


def _write(
    spark: SparkSession, done: DataFrame, scope: DataFrame, report: NlpReport, *, run_id: str
) -> None:
    note_ids = assign_ids(spark, "note", done.select("natural_key"), run_id=run_id).select(
        "natural_key", F.col("omop_id").alias("note_omop_id")
    )
    ents = (
        done.select(
            *NOTE_KEYS,
            "natural_key",
            "patient_key",
            "encounter_id",
            "recorded_at",
            "recorded_at_source",
            "source_updated_at",
            "nlp_system",
            F.explode("entities").alias("e"),
        )
        .select("*", "e.*")
        .drop("e")
    )
    ents = ents.withColumn(
        "nlp_key",
        F.concat_ws("|", "natural_key", "start_char", "end_char", "label"),
    )
    nlp_ids = assign_ids(
        spark, "note_nlp", ents.select(F.col("nlp_key").alias("natural_key")), run_id=run_id
    ).select(F.col("natural_key").alias("nlp_key"), F.col("omop_id").alias("note_nlp_id"))
    coded = map_codes(
        spark,
        ents.join(note_ids, "natural_key").join(nlp_ids, "nlp_key"),
        code=F.col("concept_code"),
        vocabulary=_vocabulary(F.col("vocabulary_id")),
        on_date=F.coalesce(F.to_date("recorded_at"), F.current_date()),
        prefix="m_",
        vocabularies=sorted(VOCABULARIES.values()),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        totals = coded.agg(
            F.count("*").alias("entities"),
            F.count("verification_status").alias("problems"),
        ).first()
        assert totals is not None
        report.entities, report.problems = int(totals["entities"]), int(totals["problems"])
        nlp_rows = coded.select(
            "note_nlp_id",
            F.col("note_omop_id").alias("note_id"),
            F.lit(0).alias("section_concept_id"),
            "snippet",
            F.col("start_char").cast("string").alias("offset"),
            "lexical_variant",
            F.coalesce("m_concept_id", F.lit(0)).alias("note_nlp_concept_id"),
            F.coalesce("m_source_concept_id", F.lit(0)).alias("note_nlp_source_concept_id"),
            "nlp_system",
            F.current_date().alias("nlp_date"),
            F.current_timestamp().alias("nlp_datetime"),
            "term_exists",
            "term_temporal",
            "term_modifiers",
            F.col("institution_code").alias("etl_institution_code"),
            F.lit(SOURCE).alias("etl_source_table"),
            F.col("natural_key").alias("etl_source_key"),
            F.lit(run_id).alias("etl_run_id"),
            F.current_timestamp().alias("etl_processed_at"),
        )
        scope_keys = scope.select(natural_key(*NOTE_KEYS).alias("etl_source_key"))
        _record(
            report,
            replace_scoped(
                spark,
                NOTE_NLP,
                nlp_rows,
                scope=scope_keys,
                by=("etl_source_key",),
                stable=("nlp_date", "nlp_datetime"),
            ),
        )
        problems = coded.where(F.col("verification_status").isNotNull()).select(
            *NOTE_KEYS,
            "patient_key",
            "encounter_id",
            F.col("start_char").alias("offset_start"),
            F.col("end_char").alias("offset_end"),
            "note_nlp_id",
            "lexical_variant",
            "label",
            "concept_key",
            F.col("concept_code").alias("source_code"),
            _vocabulary(F.col("vocabulary_id")).alias("source_vocabulary"),
            F.coalesce("m_concept_id", F.lit(0)).alias("concept_id"),
            "section",
            "assertion",
            "verification_status",
            "recorded_at",
            "recorded_at_source",
            "nlp_system",
            "source_updated_at",
            F.lit(run_id).alias("silver_run_id"),
            F.current_timestamp().alias("processed_at"),
        )
        _record(
            report,
            replace_scoped(spark, NOTE_PROBLEM, problems, scope=scope, by=NOTE_KEYS),
        )
    finally:
        coded.unpersist()
    deid = done.select(
        *NOTE_KEYS,
        "patient_key",
        "encounter_id",
        "note_type",
        "language",
        "recorded_at",
        "recorded_at_source",
        "text_deid",
        "phi_replacements",
        F.size("entities").alias("entity_count"),
        "nlp_status",
        "error_code",
        "nlp_system",
        "source_updated_at",
        F.lit(run_id).alias("silver_run_id"),
        F.current_timestamp().alias("processed_at"),
    )
    _record(report, replace_scoped(spark, NOTE_DEID, deid, scope=scope, by=NOTE_KEYS))


def _record(report: NlpReport, written: WriteReport) -> None:
    report.written[written.table] = written.inserted + written.updated + written.deleted


def describe(report: NlpReport) -> str:
    """The run in a few lines (counts only: nothing from a note)."""
    versions_ = f"{report.from_version} -> {report.to_version}"
    lines = [
        f"nlp run {report.run_id}: {report.mode} ({SOURCE} versions {versions_}), "
        f"pipeline {report.pipeline}",
        f"  notes: read={report.notes_read} processed={report.notes_processed} "
        f"removed={report.notes_removed} statuses={report.statuses or '-'}",
        f"  entities={report.entities} problems={report.problems} | "
        + (", ".join(f"{t}={n}" for t, n in sorted(report.written.items())) or "nothing written")
        + f" | {report.duration_s:.1f}s",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.nlp.spark_job [--full]``."""
    parser = argparse.ArgumentParser(prog="models.nlp.spark_job", description=__doc__)
    parser.add_argument("--full", action="store_true", help="reprocess every note")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    return run_entrypoint(lambda cfg: describe(run(build_spark(cfg), cfg, full=args.full)))


if __name__ == "__main__":
    raise SystemExit(main())
