"""One feature build: pin gold versions, compute every feature table, write, log the build.

A build is a full recompute from the gold tables at pinned Delta versions, written as a
snapshot: each table is MERGEd on its keys (rows equal to the stored ones are not
rewritten, so a rebuild over unchanged gold commits nothing) and rows the build no longer
produces are deleted. ``features.builds`` records the gold versions read and the feature
versions written. Incremental computation (only persons whose gold rows changed, from the
change data feed) is not done yet: the recompute is bounded by the gold tables' size.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error
from lakehouse.features.cohorts import encounter_index, parse_index_dates, patient_index
from lakehouse.features.events import INPATIENT_CONCEPTS, clinical_events, visits
from lakehouse.features.history import (
    concept_features,
    demographics,
    history_features,
    stay_features,
)
from lakehouse.features.labels import readmission_labels
from lakehouse.features.meds import meds_events
from lakehouse.features.tables import FeatureTables, Gold, latest_version, pin_versions, read_gold
from lakehouse.settings import Settings
from lakehouse.tables.features.ml import WIDE_WINDOWS, history_columns
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.writer import append, ensure_table, upsert

logger = logging.getLogger(__name__)

_DAY_S = 86400.0


@dataclass
class FeatureBuildReport:
    """What one build read and wrote."""

    build_id: str
    gold_versions: dict[str, int]
    output_versions: dict[str, int] = field(default_factory=dict)
    output_rows: dict[str, int] = field(default_factory=dict)
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    def counts(self) -> dict[str, int]:
        """Named counts for ``ops.job_runs``."""
        out: dict[str, int] = {}
        for kind in ("output_rows", "inserted", "updated", "deleted"):
            for table, n in getattr(self, kind).items():
                out[f"{table}.{kind}"] = n
        return out

    def describe(self) -> str:
        lines = [f"features build {self.build_id} in {self.duration_s:.1f}s"]
        lines.append(
            "  gold: " + ", ".join(f"{t}@v{v}" for t, v in sorted(self.gold_versions.items()))
        )
        for t, v in sorted(self.output_versions.items()):
            lines.append(
                f"  {t}@v{v}: {self.output_rows.get(t, 0)} rows "
                f"(+{self.inserted.get(t, 0)} ~{self.updated.get(t, 0)} "
                f"-{self.deleted.get(t, 0)})"
            )
        return "\n".join(lines)


def _windows(settings: Settings) -> list[int]:
    windows = sorted(set(settings.features.windows_days))
    if not windows or windows[0] <= 0:
        raise error(
            ErrorCode.CONFIG_INVALID,
            setting="features.windows_days",
            reason="give at least one window of one day or more",
        )
    return windows


def patient_tables(
    gold: Gold,
    v: DataFrame,
    events: DataFrame,
    index: DataFrame,
    windows: list[int],
    top_n: int,
) -> tuple[DataFrame, DataFrame]:
    """(wide patient features, long patient feature values) of the ``patient`` cohort."""
    all_windows = sorted(set(windows) | set(WIDE_WINDOWS))
    cols = history_columns(all_windows)
    hist = history_features(index, v, events, all_windows, cols, exclude_index_visit=False)
    base = index.select("index_id", "person_id", "index_time")
    wide_all = base.join(demographics(index, gold.person), "index_id", "left").join(
        hist, "index_id", "left"
    )
    wide = wide_all.select(
        "index_id", "person_id", "index_time", "age_years", "sex_male",
        *history_columns(WIDE_WINDOWS),
    )  # fmt: skip
    fixed: list[str | Column] = ["age_years", "sex_male", *history_columns(windows)]
    long_fixed = wide_all.unpivot(
        ["index_id", "person_id", "index_time"], fixed, "feature", "value"
    )
    per_concept = concept_features(index, events, windows, top_n).join(base, "index_id", "inner")
    return wide, long_fixed.unionByName(per_concept.select(*long_fixed.columns))


def encounter_table(
    gold: Gold,
    v: DataFrame,
    events: DataFrame,
    index: DataFrame,
    horizon_days: int,
) -> DataFrame:
    """Encounter features of the ``encounter`` cohort, with the readmission label."""
    cols = history_columns(WIDE_WINDOWS)
    hist = history_features(index, v, events, WIDE_WINDOWS, cols, exclude_index_visit=True)
    inpatient = v.where(F.col("visit_concept_id").isin(*INPATIENT_CONCEPTS))
    earlier = (
        Window.partitionBy("person_id")
        .orderBy("start", "visit_occurrence_id")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    prev_end = F.max("end").over(earlier)
    gap = F.when(
        prev_end.isNotNull(),
        F.greatest((F.unix_timestamp("start") - F.unix_timestamp(prev_end)) / _DAY_S, F.lit(0.0)),
    )
    attrs = inpatient.select(
        "visit_occurrence_id",
        F.col("start").alias("admit_time"),
        F.col("end").alias("discharge_time"),
        "visit_concept_id",
        "care_site_id",
        "admitted_from_concept_id",
        gap.alias("days_since_last_discharge"),
    )
    los = (
        F.unix_timestamp(F.least("discharge_time", "index_time")) - F.unix_timestamp("admit_time")
    ) / _DAY_S
    return (
        index.select("index_id", "visit_occurrence_id", "person_id", "index_time")
        .join(attrs, "visit_occurrence_id", "inner")
        .withColumn("length_of_stay_days", F.greatest(los, F.lit(0.0)))
        .join(demographics(index, gold.person), "index_id", "left")
        .join(hist, "index_id", "left")
        .join(stay_features(index, events), "index_id", "left")
        .join(readmission_labels(v, gold.death, horizon_days), "visit_occurrence_id", "left")
        .drop("index_id")
    )


def _write_snapshot(
    spark: SparkSession, spec: TableSpec, df: DataFrame, report: FeatureBuildReport
) -> None:
    """MERGE ``df`` (cached by the caller) into ``spec``; delete stored rows it lacks."""
    existed = spark.catalog.tableExists(spec.name)
    written = upsert(spark, spec, df)
    report.inserted[spec.name] = written.inserted
    report.updated[spec.name] = written.updated
    n_stale = 0
    if existed:  # a table this build created holds nothing stale
        keys = list(spec.keys)
        new_keys = df.select(*keys)
        stale = spark.table(spec.name).select(*keys).join(new_keys, keys, "left_anti")
        n_stale = stale.count()
    if n_stale:
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in spec.keys)
        (
            DeltaTable.forName(spark, spec.name)
            .alias("t")
            .merge(df.select(*spec.keys).alias("s"), on)
            .whenNotMatchedBySourceDelete()
            .execute()
        )
    report.deleted[spec.name] = n_stale
    # The MERGE's own source row count when it committed; a no-op MERGE reports none.
    report.output_rows[spec.name] = written.source_rows or df.count()
    report.output_versions[spec.name] = (
        latest_version(spark, spec.name) if n_stale else written.version
    )


def build_features(
    spark: SparkSession,
    settings: Settings,
    *,
    tables: FeatureTables | None = None,
    gold_versions: Mapping[str, int] | None = None,
    build_id: str | None = None,
    meds: bool = True,
) -> FeatureBuildReport:
    """Build every feature table (and the MEDS events unless ``meds`` is false).

    ``gold_versions`` (gold table name -> Delta version) rebuilds from older gold versions;
    tables not named are read at their newest version.
    """
    t0 = time.perf_counter()
    tables = tables or FeatureTables()
    cfg = settings.features
    windows = _windows(settings)
    index_dates = parse_index_dates(cfg.patient_index_dates)
    pinned = pin_versions(spark, tables, gold_versions)
    report = FeatureBuildReport(build_id=build_id or str(uuid.uuid4()), gold_versions=pinned)
    gold = read_gold(spark, tables, pinned)
    logger.info("features build %s from %s", report.build_id, pinned)

    cached: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(df)
        return df

    def stamp(df: DataFrame) -> DataFrame:
        return df.withColumn("build_id", F.lit(report.build_id))

    try:
        v = keep(visits(gold))
        events = keep(clinical_events(gold))
        p_index = keep(patient_index(v, gold.death, index_dates))
        e_index = keep(encounter_index(v, cfg.encounter_index))
        wide, long = patient_tables(gold, v, events, p_index, windows, cfg.top_concepts)
        outputs: list[tuple[TableSpec, DataFrame]] = [
            (tables.patient_index, p_index.unionByName(e_index)),
            (tables.patient_features, wide),
            (tables.patient_feature_values, long),
            (
                tables.encounter_features,
                encounter_table(gold, v, events, e_index, cfg.readmission_days),
            ),
        ]
        if meds:
            outputs.append((tables.meds_events, meds_events(gold)))
        for spec, df in outputs:
            out = keep(stamp(df))
            _write_snapshot(spark, spec, out, report)
    finally:
        for df in cached:
            df.unpersist()

    ensure_table(spark, tables.builds)
    params = cfg.model_dump(mode="json")
    row = {
        "build_id": report.build_id,
        "built_at": datetime.now(UTC),
        "gold_versions": report.gold_versions,
        "output_versions": report.output_versions,
        "output_rows": report.output_rows,
        "params": json.dumps(params, sort_keys=True),
    }
    append(spark, tables.builds, spark.createDataFrame([row], tables.builds.schema))
    report.duration_s = time.perf_counter() - t0
    logger.info("features build %s done in %.1fs", report.build_id, report.duration_s)
    return report
