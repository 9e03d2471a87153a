"""Gold: the OMOP CDM v5.4 tables from silver, incrementally, with ids stable across runs.

``python -m jobs.gold [--full]`` / ``lakehouse gold``.

1. **Pin** every silver and vocab table at its current Delta version; everything this run
   reads is read at that version, and ``ops.gold_progress`` records it at the end.
2. **Vocabulary** tables (concept, concept_relationship, ...) are rebuilt from ``vocab.*``
   when a vocab table changed (one MERGE each; unchanged rows are not rewritten).
3. **Scope.** A first run, ``--full``, or an unreadable change feed rebuilds everything.
   Otherwise the run finds the *persons* touched since the recorded versions: patients of
   changed silver rows (change data feed, any change type) and persons whose index rows
   changed (merges and splits: old and new person ids). It rebuilds every OMOP row of
   those persons from all their silver records, so late corrections, deletions, encounter
   links learnt late and EMPI merges all land the same way. Work is proportional to the
   persons touched, not to the tables.
4. Each OMOP table: transform (``lakehouse.gold.clinical``, one row per fact across
   sources), ids from ``ops.omop_ids`` (``lakehouse.gold.ids``), foreign keys resolved
   through the same registry, MERGE; rows of scoped persons no longer produced are
   deleted. Rows whose patient is not in the master patient index yet are not written
   (counted as ``unlinked``): the EMPI run that links them puts their person in scope.
5. observation_period per person from the gold event tables; cdm_source; progress.

A killed run is redone by the next: progress is written last, MERGEs are idempotent, and
ids once assigned are kept.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.entrypoint import run_entrypoint
from lakehouse.gold import clinical as T
from lakehouse.gold import vocabulary as V
from lakehouse.gold.ids import assign_ids, ids_of
from lakehouse.runs import job_run
from lakehouse.settings import Settings
from lakehouse.tables.gold import omop
from lakehouse.tables.ops.gold import GOLD_PROGRESS, OMOP_IDS
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.versions import latest_version
from lakehouse.tables.writer import delete_keys, ensure_table, upsert

logger = logging.getLogger(__name__)

#: Silver tables whose changes put persons in scope (all carry patient_key).
EVENT_SOURCES = (
    "silver.patient", "silver.encounter", "silver.encounter_transfer", "silver.diagnosis",
    "silver.medication_order", "silver.procedure", "silver.lab_result", "silver.vital_sign",
    "silver.note",
)  # fmt: skip
DIMENSION_SOURCES = ("silver.org", "silver.dept", "silver.provider")
INDEX = "silver.person_index"
VOCAB_SOURCES = (
    "vocab.concept", "vocab.concept_relationship", "vocab.concept_ancestor",
    "vocab.source_to_concept_map", "vocab.vocabulary", "vocab.concept_synonym",
)  # fmt: skip

#: Which OMOP table an ``_nk_<column>`` foreign key refers to.
FK_TABLES = {
    "person_id": "person",
    "visit_occurrence_id": "visit_occurrence",
    "provider_id": "provider",
    "care_site_id": "care_site",
    "location_id": "location",
}


@dataclass
class TableResult:
    written: int = 0
    deleted: int = 0
    unlinked: int = 0


@dataclass
class GoldReport:
    run_id: str
    mode: str = "unchanged"
    persons_in_scope: int | None = None
    tables: dict[str, TableResult] = field(default_factory=dict)
    duration_s: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, r in sorted(self.tables.items()):
            if r.written:
                out[f"{name}.written"] = r.written
            if r.deleted:
                out[f"{name}.deleted"] = r.deleted
            if r.unlinked:
                out[f"{name}.unlinked"] = r.unlinked
        if self.persons_in_scope is not None:
            out["persons_in_scope"] = self.persons_in_scope
        return out


class _Ctx:
    """One run's pinned versions and helpers."""

    def __init__(self, spark: SparkSession, run_id: str, versions: dict[str, int]) -> None:
        self.spark = spark
        self.run_id = run_id
        self.versions = versions

    def read(self, table: str) -> DataFrame:
        """``table`` at the version pinned for this run (names come from constants)."""
        if table not in self.versions:
            raise KeyError(table)
        version = int(self.versions[table])
        return self.spark.sql(f"SELECT * FROM {table} VERSION AS OF {version}")  # noqa: S608


def run(spark: SparkSession, cfg: Settings, *, full: bool = False) -> GoldReport:
    """Bring gold up to date with silver (see the module docstring)."""
    t0 = time.perf_counter()
    with job_run(spark, cfg, "gold") as rec:
        report = GoldReport(rec.run_id)
        first = full or not spark.catalog.tableExists(GOLD_PROGRESS.name)
        for spec in (*omop.SPECS.values(), OMOP_IDS, GOLD_PROGRESS) if first else ():
            ensure_table(spark, spec)  # later runs: each write ensures its own table
        versions = {
            t: v
            for t in (*EVENT_SOURCES, *DIMENSION_SOURCES, INDEX, *VOCAB_SOURCES)
            if (v := latest_version(spark, t)) is not None
        }
        done = {
            r["source_table"]: r["source_version"]
            for r in spark.table(GOLD_PROGRESS.name).collect()  # one row per source table
        }
        ctx = _Ctx(spark, rec.run_id, versions)
        changed = {t for t, v in versions.items() if full or done.get(t) is None or done[t] < v}
        if changed & set(VOCAB_SOURCES) or full:
            _vocabulary(ctx, report)
        _dimensions(ctx, report, changed)
        if INDEX in versions and "silver.patient" in versions:
            scope = None if full else _scope(ctx, done, changed)
            report.mode = "full" if scope is None else "changes"
            if scope is not None:
                scope = scope.localCheckpoint()
                report.persons_in_scope = scope.count()
            if scope is None or report.persons_in_scope:
                _clinical(ctx, report, scope, changed)
            else:
                report.mode = "unchanged"
        _cdm_source(ctx, report)
        progress = spark.createDataFrame(
            [(t, v, report.mode, rec.run_id) for t, v in sorted(versions.items())],
            "source_table string, source_version long, mode string, run_id string",
        ).withColumn("processed_at", F.current_timestamp())
        upsert(spark, GOLD_PROGRESS, progress)
        for key, value in report.counts().items():
            rec.count(key, value)
    report.duration_s = time.perf_counter() - t0
    logger.info("gold run %s: mode %s, %s", report.run_id, report.mode, report.counts())
    return report


# --- vocabulary and dimensions -----------------------------------------------------------


def _sync(ctx: _Ctx, report: GoldReport, spec: TableSpec, df: DataFrame) -> None:
    """Make ``spec`` hold exactly ``df`` (one MERGE; unchanged rows untouched)."""
    w = upsert(ctx.spark, spec, df, delete_unmatched=True)
    report.tables[spec.table_name] = TableResult(w.inserted + w.updated, w.deleted)


def _vocabulary(ctx: _Ctx, report: GoldReport) -> None:
    spark = ctx.spark
    empty = {t: t not in ctx.versions for t in VOCAB_SOURCES}
    concept_src = (
        ctx.read("vocab.concept")
        if not empty["vocab.concept"]
        else spark.createDataFrame([], "concept_id long, edition string, concept_code string, "
                                   "concept_name string, concept_name_zh string, "
                                   "vocabulary_id string, domain_id string, "
                                   "concept_class_id string, standard_concept string, "
                                   "valid_start_date date, valid_end_date date, "
                                   "invalid_reason string")
    )  # fmt: skip
    concepts = V.concept(spark, concept_src).localCheckpoint()
    _sync(ctx, report, omop.CONCEPT, concepts)
    rels = None
    if not empty["vocab.concept_relationship"]:
        rels = V.concept_relationship(ctx.read("vocab.concept_relationship")).localCheckpoint()
        _sync(ctx, report, omop.CONCEPT_RELATIONSHIP, rels)
        _sync(ctx, report, omop.RELATIONSHIP, V.relationship(rels))
    if not empty["vocab.concept_ancestor"]:
        _sync(
            ctx,
            report,
            omop.CONCEPT_ANCESTOR,
            V.concept_ancestor(ctx.read("vocab.concept_ancestor")),
        )
    if not empty["vocab.source_to_concept_map"]:
        stcm = V.source_to_concept_map(ctx.read("vocab.source_to_concept_map"))
        _sync(ctx, report, omop.SOURCE_TO_CONCEPT_MAP, stcm)
    if not empty["vocab.vocabulary"]:
        _sync(
            ctx,
            report,
            omop.VOCABULARY,
            V.vocabulary(spark, ctx.read("vocab.vocabulary"), concepts),
        )
    if not empty["vocab.concept_synonym"]:
        _sync(
            ctx, report, omop.CONCEPT_SYNONYM, V.concept_synonym(ctx.read("vocab.concept_synonym"))
        )
    _sync(ctx, report, omop.DOMAIN, V.domain(spark, concepts))
    _sync(ctx, report, omop.CONCEPT_CLASS, V.concept_class(concepts))  # fmt: skip


def _dimensions(ctx: _Ctx, report: GoldReport, changed: set[str]) -> None:
    """Locations, care sites and providers: small, rebuilt whole when their sources change."""
    have = ctx.versions
    if "silver.patient" in changed:
        _write(ctx, report, "location", T.location(ctx.read("silver.patient")), scope=None)
    if "silver.org" in have and "silver.dept" in have and changed & {"silver.org", "silver.dept"}:
        sites = T.care_site(ctx.read("silver.org"), ctx.read("silver.dept"))
        _write(ctx, report, "care_site", sites, scope=None)
    if "silver.provider" in changed:
        _write(ctx, report, "provider", T.provider(ctx.read("silver.provider")), scope=None)


# --- scope --------------------------------------------------------------------------------


def _changes(ctx: _Ctx, table: str, since: int) -> DataFrame:
    return (
        ctx.spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", since + 1)
        .option("endingVersion", ctx.versions[table])
        .table(table)
    )


def _scope(ctx: _Ctx, done: dict[str, int], changed: set[str]) -> DataFrame | None:
    """Person ids (master patient index) to rebuild; None: rebuild everything."""
    if any(done.get(t) is None for t in (INDEX, "silver.patient")):
        return None
    index = ctx.read(INDEX)
    try:
        patients: list[DataFrame] = [
            _changes(ctx, t, done[t]).select("patient_key")
            for t in EVENT_SOURCES
            if t in changed and t in done
        ]
        persons: list[DataFrame] = []
        if INDEX in changed:
            persons.append(_changes(ctx, INDEX, done[INDEX]).select("person_id"))
    except AnalysisException as exc:  # a feed not readable across a schema change
        logger.warning(
            "gold: change feed unreadable (%s); rebuilding everything", type(exc).__name__
        )
        return None
    new_sources = [t for t in EVENT_SOURCES if t in changed and t not in done]
    for t in new_sources:  # a silver table that appeared since the last run: all its patients
        patients.append(ctx.read(t).select("patient_key"))
    frames = list(persons)
    if patients:
        keys = patients[0]
        for p in patients[1:]:
            keys = keys.unionByName(p)
        frames.append(
            index.join(
                keys.where(F.col("patient_key").isNotNull()).distinct(), "patient_key"
            ).select("person_id")
        )
    if not frames:
        return ctx.spark.createDataFrame([], "person_id string")
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out.where(F.col("person_id").isNotNull()).distinct()


# --- clinical tables --------------------------------------------------------------------


#: The silver tables each OMOP table is built from: in a run scoped by changes, a table is
#: rebuilt when one of them changed, or when the person index did (person ids moved).
TABLE_SOURCES = {
    "person": ("silver.patient",),
    "visit_occurrence": ("silver.encounter",),
    "visit_detail": ("silver.encounter_transfer", "silver.encounter"),
    "condition_occurrence": ("silver.diagnosis",),
    "observation": ("silver.diagnosis",),
    "drug_exposure": ("silver.medication_order",),
    "procedure_occurrence": ("silver.procedure",),
    "measurement": ("silver.lab_result", "silver.vital_sign"),
    "specimen": ("silver.lab_result",),
    "note": ("silver.note",),
}


def _clinical(ctx: _Ctx, report: GoldReport, scope: DataFrame | None, changed: set[str]) -> None:
    spark = ctx.spark

    def wanted(table: str) -> bool:
        return scope is None or INDEX in changed or bool(changed & set(TABLE_SOURCES[table]))

    index = ctx.read(INDEX)
    index_scoped = index if scope is None else index.join(scope, "person_id", "left_semi")
    persons = (
        index_scoped.groupBy("patient_key").agg(F.min("person_id").alias("person_id"))
    ).localCheckpoint()

    def silver(table: str) -> DataFrame | None:
        if table not in ctx.versions:
            return None
        df = ctx.read(table)
        return (
            df
            if scope is None
            else df.join(persons.select("patient_key"), "patient_key", "left_semi")
        )

    patients = silver("silver.patient")
    assert patients is not None
    if wanted("person"):
        _write(ctx, report, "person", T.person(patients, index_scoped), scope=scope)

    visits = None
    if (enc := silver("silver.encounter")) is not None and (
        wanted("visit_occurrence") or wanted("visit_detail")
    ):
        visits = T.visit_occurrence(enc, persons).localCheckpoint()
        if wanted("visit_occurrence"):
            _write(ctx, report, "visit_occurrence", visits, scope=scope)
    tr = silver("silver.encounter_transfer") if wanted("visit_detail") else None
    if tr is not None and visits is not None:
        _write(ctx, report, "visit_detail", T.visit_detail(tr, visits, persons), scope=scope)
    enc_all = silver("silver.encounter")
    starts = T.visit_starts(enc_all).localCheckpoint() if enc_all is not None else None
    concepts = spark.table(omop.CONCEPT.name)
    domains = concepts.select(
        F.col("concept_id").alias("_domain_concept_id"), F.col("domain_id").alias("_concept_domain")
    )
    units = (
        concepts.where(F.col("vocabulary_id") == "UCUM")
        .select(
            F.col("concept_code").alias("_unit_code"), F.col("concept_id").alias("_unit_concept_id")
        )
        .dropDuplicates(["_unit_code"])
    )
    if wanted("condition_occurrence") and (dx := silver("silver.diagnosis")) is not None:
        routed = T.diagnoses(dx, persons, domains, starts).localCheckpoint()
        _write(ctx, report, "condition_occurrence", T.condition_occurrence(routed), scope=scope)
        _write(ctx, report, "observation", T.observation(routed), scope=scope)
    if wanted("drug_exposure") and (med := silver("silver.medication_order")) is not None:
        _write(ctx, report, "drug_exposure", T.drug_exposure(med, persons, starts), scope=scope)
    if wanted("procedure_occurrence") and (proc := silver("silver.procedure")) is not None:
        _write(
            ctx,
            report,
            "procedure_occurrence",
            T.procedure_occurrence(proc, persons, starts),
            scope=scope,
        )
    parts = []
    labs = silver("silver.lab_result") if wanted("measurement") else None
    if labs is not None:
        parts.append(T.lab_measurements(labs, persons, units, starts))
        _write(ctx, report, "specimen", T.specimen(labs, persons), scope=scope)
    if wanted("measurement") and (vit := silver("silver.vital_sign")) is not None:
        parts.append(T.vital_measurements(vit, persons, units, starts))
    if parts:
        m = (
            parts[0]
            if len(parts) == 1
            else parts[0].unionByName(parts[1], allowMissingColumns=True)
        )
        _write(ctx, report, "measurement", m, scope=scope)
    if wanted("note") and (notes := silver("silver.note")) is not None:
        _write(ctx, report, "note", T.note(notes, persons, starts), scope=scope)
    _observation_period(ctx, report, scope)  # fmt: skip


def _scope_ids(ctx: _Ctx, scope: DataFrame) -> DataFrame:
    """OMOP person ids of the scoped persons (``person_id`` long)."""
    return (
        ids_of(ctx.spark, "person")
        .join(scope, F.col("natural_key") == F.col("person_id"))
        .select(F.col("omop_id").alias("person_id"))
    )


def _resolve(ctx: _Ctx, table: str, df: DataFrame) -> DataFrame:
    """Own primary key and foreign keys from ``ops.omop_ids``."""
    spec = omop.spec(table)
    pk = spec.keys[0]
    ids = assign_ids(ctx.spark, table, df, run_id=ctx.run_id)
    out = df.join(ids.withColumnRenamed("omop_id", pk), "natural_key")
    for col in [c for c in df.columns if c.startswith("_nk_")]:
        target = col[len("_nk_") :]
        if target == pk:
            out = out.withColumn(target, F.col(pk))
            continue
        ref = ids_of(ctx.spark, FK_TABLES[target]).select(
            F.col("natural_key").alias(col), F.col("omop_id").alias(target)
        )
        out = out.join(ref, col, "left")
    return out


def _write(
    ctx: _Ctx, report: GoldReport, table: str, rows: DataFrame, *, scope: DataFrame | None
) -> None:
    """Ids, MERGE, and deletion of what the sources no longer say (within the scope)."""
    spec = omop.spec(table)
    rows = rows.localCheckpoint()
    resolved = (
        _resolve(ctx, table, rows)
        .withColumn("etl_run_id", F.lit(ctx.run_id))
        .withColumn("etl_processed_at", F.current_timestamp())
    )
    needs_person = "person_id" in spec.column_names
    linked = F.col("person_id").isNotNull() if needs_person else F.lit(True)
    resolved = resolved.localCheckpoint()
    keep = resolved.where(~F.col("_drop") & linked).select(
        *[c for c in spec.column_names if c in resolved.columns]
    )
    result = TableResult()
    if needs_person:
        result.unlinked = resolved.where(~F.col("_drop") & ~linked).count()
    w = upsert(ctx.spark, spec, keep, delete_unmatched=scope is None)
    result.written, result.deleted = w.inserted + w.updated, w.deleted
    if scope is not None and needs_person:
        stale = (
            ctx.spark.table(spec.name)
            .join(_scope_ids(ctx, scope), "person_id", "left_semi")
            .select(*spec.keys)
            .join(keep.select(*spec.keys), list(spec.keys), "left_anti")
        ).localCheckpoint()
        if not stale.isEmpty():
            result.deleted += delete_keys(ctx.spark, spec, stale).deleted
    report.tables[table] = result


def _observation_period(ctx: _Ctx, report: GoldReport, scope: DataFrame | None) -> None:
    spark = ctx.spark
    spans: list[tuple[str, str, str | None]] = [
        ("visit_occurrence", "visit_start_date", "visit_end_date"),
        ("condition_occurrence", "condition_start_date", "condition_end_date"),
        ("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date"),
        ("procedure_occurrence", "procedure_date", None),
        ("measurement", "measurement_date", None),
        ("observation", "observation_date", None),
    ]
    frames = []
    for table, start, end in spans:
        df = spark.table(omop.spec(table).name)
        frames.append(
            df.select(
                "person_id",
                F.col(start).alias("start"),
                (F.col(end) if end else F.col(start)).alias("end"),
            )
        )
    events = frames[0]
    for f in frames[1:]:
        events = events.unionByName(f)
    if scope is not None:
        events = events.join(_scope_ids(ctx, scope), "person_id", "left_semi")
    periods = T.observation_period(events.where(F.col("start").isNotNull())).select(
        F.col("person_id").cast("string").alias("natural_key"),
        "person_id",
        "observation_period_start_date",
        "observation_period_end_date",
        F.lit(32817).cast("long").alias("period_type_concept_id"),
        F.col("person_id").cast("string").alias("etl_source_key"),
        F.lit("gold.*").alias("etl_source_table"),
        F.lit(False).alias("_drop"),
    )
    ids = assign_ids(spark, "observation_period", periods, run_id=ctx.run_id)
    rows = (
        periods.join(ids.withColumnRenamed("omop_id", "observation_period_id"), "natural_key")
        .withColumn("etl_run_id", F.lit(ctx.run_id))
        .withColumn("etl_processed_at", F.current_timestamp())
        .drop("natural_key", "_drop")
    )
    spec = omop.OBSERVATION_PERIOD
    w = upsert(spark, spec, rows, delete_unmatched=scope is None)
    result = TableResult(w.inserted + w.updated, w.deleted)
    if scope is not None:
        stale = (
            spark.table(spec.name)
            .join(_scope_ids(ctx, scope), "person_id", "left_semi")
            .select("observation_period_id")
            .join(rows.select("observation_period_id"), "observation_period_id", "left_anti")
        )
        if not stale.isEmpty():
            result.deleted += delete_keys(spark, spec, stale).deleted
    report.tables["observation_period"] = result


def _cdm_source(ctx: _Ctx, report: GoldReport) -> None:
    vocab_version = (
        ctx.spark.table(omop.VOCABULARY.name)
        .select(F.concat_ws(", ", F.sort_array(F.collect_set("vocabulary_version"))).alias("v"))
        .first()
    )
    row = ctx.spark.createDataFrame(
        [
            (
                "Clinical lakehouse",
                "LH",
                "the hospital",
                "OMOP CDM v5.4 built from the lakehouse silver layer by jobs/gold.py.",
                date.today(),
                date.today(),
                "v5.4",
                0,
                (vocab_version["v"] if vocab_version else None) or "none",
            )
        ],
        "cdm_source_name string, cdm_source_abbreviation string, cdm_holder string, "
        "source_description string, source_release_date date, cdm_release_date date, "
        "cdm_version string, cdm_version_concept_id long, vocabulary_version string",
    )
    w = upsert(ctx.spark, omop.CDM_SOURCE, row)
    report.tables["cdm_source"] = TableResult(w.inserted + w.updated)


def describe(report: GoldReport) -> str:
    lines = [f"gold run {report.run_id}: mode {report.mode} ({report.duration_s:.1f}s)"]
    if report.persons_in_scope is not None:
        lines.append(f"  persons in scope: {report.persons_in_scope}")
    for name, r in sorted(report.tables.items()):
        lines.append(f"  {name:<24} written={r.written} deleted={r.deleted} unlinked={r.unlinked}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs.gold", description=__doc__)
    parser.add_argument("--full", action="store_true", help="rebuild every OMOP row")
    args = parser.parse_args(argv)
    from lakehouse.spark import build_spark

    go: Callable[[Settings], str] = lambda cfg: describe(  # noqa: E731
        run(build_spark(cfg), cfg, full=args.full)
    )
    return run_entrypoint(go)


if __name__ == "__main__":
    raise SystemExit(main())
