"""Features of an index row from what happened strictly before its index time.

Window ``w``: ``index_time - w days <= event time < index_time`` (inclusive start, exclusive
end). Visits count in a window when they *started* in it (the index visit itself is
excluded for the encounter cohort); inpatient days are the part of each inpatient stay that
lies inside the window and before the index time. Every input is ``DataFrame -> DataFrame``;
joins are per person and bounded by the longest window.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.features.events import (
    EMERGENCY,
    FEMALE,
    INPATIENT,
    INPATIENT_CONCEPTS,
    MALE,
    OUTPATIENT,
    birth_time,
)

_DAY_S = 86400.0


def _since(window: int) -> Column:
    return F.col("index_time") - F.make_dt_interval(F.lit(window))


def _in_window(time: str, window: int) -> Column:
    return (F.col(time) >= _since(window)) & (F.col(time) < F.col("index_time"))


def demographics(index: DataFrame, person: DataFrame) -> DataFrame:
    """``index_id`` -> age at the index time (whole years) and ``sex_male``."""
    p = person.select(
        "person_id", birth_time(person).alias("birth"), F.col("gender_concept_id").alias("g")
    )
    return index.join(p, "person_id", "left").select(
        "index_id",
        F.floor(F.months_between("index_time", "birth") / 12).cast("double").alias("age_years"),
        F.when(F.col("g") == MALE, 1.0)
        .when(F.col("g") == FEMALE, 0.0)
        .cast("double")
        .alias("sex_male"),
    )


def visit_features(
    index: DataFrame, visits: DataFrame, windows: Sequence[int], *, exclude_index_visit: bool
) -> DataFrame:
    """``index_id`` -> visits by type and inpatient days per window."""
    longest = max(windows)
    v = visits.select(
        "person_id",
        F.col("visit_occurrence_id").alias("v_id"),
        F.col("visit_concept_id").alias("v_concept"),
        F.col("start").alias("v_start"),
        F.col("end").alias("v_end"),
    )
    i = index.select("index_id", "person_id", "index_time", "visit_occurrence_id")
    cond = (
        (i["person_id"] == v["person_id"])
        & (F.col("v_start") < F.col("index_time"))
        & (F.col("v_end") >= F.col("index_time") - F.make_dt_interval(F.lit(longest)))
    )
    joined = i.join(v, cond, "inner")
    if exclude_index_visit:
        joined = joined.where(~F.col("v_id").eqNullSafe(F.col("visit_occurrence_id")))
    aggs: list[Column] = []
    types = {"inpatient": [INPATIENT], "outpatient": [OUTPATIENT], "emergency": [EMERGENCY]}
    for w in windows:
        started = _in_window("v_start", w)
        for name, concepts in types.items():
            hit = started & F.col("v_concept").isin(*concepts)
            aggs.append(F.sum(F.when(hit, 1.0).otherwise(0.0)).alias(f"visits_{name}_{w}d"))
        aggs.append(F.sum(F.when(started, 1.0).otherwise(0.0)).alias(f"visits_total_{w}d"))
        lo = F.greatest(F.col("v_start"), _since(w))
        hi = F.least(F.col("v_end"), F.col("index_time"))
        seconds = F.unix_timestamp(hi) - F.unix_timestamp(lo)
        stay = F.when(F.col("v_concept").isin(*INPATIENT_CONCEPTS), F.greatest(seconds, F.lit(0)))
        aggs.append((F.coalesce(F.sum(stay), F.lit(0)) / _DAY_S).alias(f"inpatient_days_{w}d"))
    return joined.groupBy("index_id").agg(*aggs)


def _events_before(index: DataFrame, events: DataFrame, longest: int) -> DataFrame:
    i = index.select("index_id", F.col("person_id").alias("i_person"), "index_time")
    cond = (
        (i["i_person"] == events["person_id"])
        & (events["time"] < F.col("index_time"))
        & (events["time"] >= F.col("index_time") - F.make_dt_interval(F.lit(longest)))
    )
    return i.join(events, cond, "inner")


def event_features(index: DataFrame, events: DataFrame, windows: Sequence[int]) -> DataFrame:
    """``index_id`` -> condition, drug, measurement, procedure counts per window."""
    joined = _events_before(index, events, max(windows))
    aggs: list[Column] = []
    for w in windows:
        inw = _in_window("time", w)

        def n(domain: str, inw: Column = inw) -> Column:
            return F.sum(F.when(inw & (F.col("domain") == domain), 1.0).otherwise(0.0))

        def distinct(domain: str, inw: Column = inw) -> Column:
            hit = inw & (F.col("domain") == domain)
            return F.count_distinct(F.when(hit, F.col("concept_id"))).cast("double")

        aggs += [
            n("condition").alias(f"conditions_{w}d"),
            distinct("condition").alias(f"conditions_distinct_{w}d"),
            n("drug").alias(f"drugs_{w}d"),
            distinct("drug").alias(f"drugs_distinct_{w}d"),
            n("measurement").alias(f"measurements_{w}d"),
            n("procedure").alias(f"procedures_{w}d"),
        ]
    return joined.groupBy("index_id").agg(*aggs)


def history_features(
    index: DataFrame,
    visits: DataFrame,
    events: DataFrame,
    windows: Sequence[int],
    columns: Sequence[str],
    *,
    exclude_index_visit: bool,
) -> DataFrame:
    """``index_id`` -> every fixed history column in ``columns``; counts default to 0."""
    out = (
        index.select("index_id")
        .join(visit_features(index, visits, windows, exclude_index_visit=exclude_index_visit),
              "index_id", "left")
        .join(event_features(index, events, windows), "index_id", "left")
    )  # fmt: skip
    return out.select(
        "index_id",
        *[F.coalesce(F.col(c), F.lit(0.0)).alias(c) for c in columns],
    )


def top_concepts(events: DataFrame, top_n: int) -> DataFrame:
    """(domain, concept_id) of the ``top_n`` concepts with most persons per domain (0: all)."""
    per = (
        events.where(F.col("concept_id").isNotNull())
        .groupBy("domain", "concept_id")
        .agg(F.count_distinct("person_id").alias("persons"))
    )
    if top_n <= 0:
        return per.select("domain", "concept_id")
    rank = F.row_number().over(
        Window.partitionBy("domain").orderBy(F.desc("persons"), F.asc("concept_id"))
    )
    return per.withColumn("rank", rank).where(F.col("rank") <= top_n).select("domain", "concept_id")


def concept_features(
    index: DataFrame, events: DataFrame, windows: Sequence[int], top_n: int
) -> DataFrame:
    """Long per-concept features: ``index_id, feature, value``.

    ``<domain>:<concept_id>:<w>d`` counts for conditions, drugs, procedures and
    observations; ``measurement:<concept_id>:<w>d:<stat>`` for stat in count, last, min,
    max, mean (numeric values only; ``last`` is the latest value, ties by the larger value).
    """
    kept = events.join(F.broadcast(top_concepts(events, top_n)), ["domain", "concept_id"])
    joined = _events_before(index, kept, max(windows))
    ws = F.explode(F.array(*[F.lit(w) for w in windows])).alias("w")
    exploded = joined.select(
        "index_id", "index_time", "domain", "concept_id", "time", "value", ws
    ).where(F.col("time") >= F.col("index_time") - F.make_dt_interval(F.col("w")))
    grouped = exploded.groupBy("index_id", "domain", "concept_id", "w").agg(
        F.count(F.lit(1)).cast("double").alias("count"),
        F.count("value").cast("double").alias("n_values"),
        F.max_by("value", F.struct(F.col("value").isNotNull(), "time", "value")).alias("last"),
        F.min("value").alias("min"),
        F.max("value").alias("max"),
        F.avg("value").alias("mean"),
    )
    base = F.concat_ws(":", "domain", "concept_id", F.concat(F.col("w").cast("string"), F.lit("d")))
    counts = grouped.where(F.col("domain") != "measurement").select(
        "index_id", base.alias("feature"), F.col("count").alias("value")
    )
    m = grouped.where(F.col("domain") == "measurement")
    stats = F.explode(
        F.array(
            F.struct(F.lit("count").alias("stat"), F.col("count").alias("v")),
            F.struct(F.lit("last").alias("stat"), F.col("last").alias("v")),
            F.struct(F.lit("min").alias("stat"), F.col("min").alias("v")),
            F.struct(F.lit("max").alias("stat"), F.col("max").alias("v")),
            F.struct(F.lit("mean").alias("stat"), F.col("mean").alias("v")),
        )
    ).alias("s")
    measured = m.select("index_id", base.alias("base"), stats).select(
        "index_id",
        F.concat_ws(":", "base", "s.stat").alias("feature"),
        F.col("s.v").alias("value"),
    )
    return counts.unionByName(measured)


def stay_features(index: DataFrame, events: DataFrame) -> DataFrame:
    """``index_id`` -> events of the index visit recorded before the index time."""
    i = index.select("index_id", "index_time", F.col("visit_occurrence_id").alias("i_visit"))
    joined = i.join(
        events,
        (events["visit_occurrence_id"] == F.col("i_visit"))
        & (events["time"] < F.col("index_time")),
    )

    def n(domain: str) -> Column:
        return F.sum(F.when(F.col("domain") == domain, 1.0).otherwise(0.0))

    agg = joined.groupBy("index_id").agg(
        n("condition").alias("stay_conditions"),
        n("drug").alias("stay_drugs"),
        n("measurement").alias("stay_measurements"),
    )
    cols = ("stay_conditions", "stay_drugs", "stay_measurements")
    return (
        index.select("index_id")
        .join(agg, "index_id", "left")
        .select("index_id", *[F.coalesce(F.col(c), F.lit(0.0)).alias(c) for c in cols])
    )
