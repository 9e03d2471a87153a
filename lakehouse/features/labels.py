"""The 30-day readmission label of inpatient visits, from later visits only.

For an inpatient visit discharged at ``d``: the next inpatient admission strictly after
``d`` (a window over each person's admissions and discharges in time order, admissions
first on ties: an admission at the very discharge instant is a transfer, not a
readmission). ``label_readmit`` is true when it starts within ``horizon`` days; false when
it does not and the data reach ``d + horizon`` (or the person died after discharge and
before a readmission could be seen); null when censored (the data end earlier) or when the
person died during the stay. Labels are outcomes: they are never inputs to features.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.features.events import INPATIENT_CONCEPTS, event_time

_DAY_S = 86400.0


def readmission_labels(visits: DataFrame, death: DataFrame, horizon_days: int) -> DataFrame:
    """``visit_occurrence_id`` -> ``label_readmit``, ``days_to_readmission``, horizon."""
    inpatient = visits.where(F.col("visit_concept_id").isin(*INPATIENT_CONCEPTS))
    marks = inpatient.select(
        "person_id", "visit_occurrence_id", F.col("start").alias("t"), F.lit(0).alias("kind")
    ).unionByName(
        inpatient.select(
            "person_id", "visit_occurrence_id", F.col("end").alias("t"), F.lit(1).alias("kind")
        )
    )
    after = (
        Window.partitionBy("person_id")
        .orderBy("t", "kind", "visit_occurrence_id")
        .rowsBetween(1, Window.unboundedFollowing)
    )
    next_admit = F.min(F.when(F.col("kind") == 0, F.col("t"))).over(after)
    discharges = (
        marks.withColumn("next_admit", next_admit)
        .where(F.col("kind") == 1)
        .select("person_id", "visit_occurrence_id", F.col("t").alias("discharge"), "next_admit")
    )
    data_end = visits.agg(F.max(F.greatest("start", "end")).alias("data_end"))
    died = (
        death.select("person_id", event_time("death_datetime", "death_date").alias("died"))
        .groupBy("person_id")
        .agg(F.min("died").alias("died"))
    )
    horizon_end = F.col("discharge") + F.make_dt_interval(F.lit(horizon_days))
    gap = (F.unix_timestamp("next_admit") - F.unix_timestamp("discharge")) / _DAY_S
    readmitted = F.col("next_admit").isNotNull() & (F.col("next_admit") <= horizon_end)
    died_in_stay = F.col("died").isNotNull() & (F.col("died") <= F.col("discharge"))
    died_after = F.col("died").isNotNull() & (F.col("died") <= horizon_end)
    observed = F.col("data_end") >= horizon_end
    label = (
        F.when(died_in_stay, F.lit(None))
        .when(readmitted, F.lit(True))
        .when(observed | died_after, F.lit(False))
        .otherwise(F.lit(None))
        .cast("boolean")
    )
    return (
        discharges.crossJoin(F.broadcast(data_end))
        .join(died, "person_id", "left")
        .select(
            "visit_occurrence_id",
            label.alias("label_readmit"),
            gap.cast("double").alias("days_to_readmission"),
            F.lit(horizon_days).cast("int").alias("label_horizon_days"),
        )
    )
