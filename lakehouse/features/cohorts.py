"""The index times features are computed at (``features.patient_index``).

- ``patient`` cohort: each person with at least one visit, at each date of
  ``settings.features.patient_index_dates`` (midnight, hospital time zone) that falls after
  their first visit start and not after their death; with no dates configured, at the start
  of their last visit (the features then describe everything before that visit).
- ``encounter`` cohort: every inpatient visit (9201, 262), at its discharge (default) or its
  admission (``settings.features.encounter_index``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error
from lakehouse.features.events import INPATIENT_CONCEPTS, event_time

INDEX_COLUMNS = (
    "cohort", "index_id", "person_id", "index_time", "visit_occurrence_id", "index_rule",
)  # fmt: skip


def parse_index_dates(values: Sequence[str]) -> list[date]:
    """ISO dates of the settings (``LH-CFG-001`` for one that is not a date)."""
    out = []
    for v in values:
        try:
            out.append(date.fromisoformat(v))
        except ValueError:
            raise error(
                ErrorCode.CONFIG_INVALID,
                setting="features.patient_index_dates",
                reason="each entry must be an ISO date (yyyy-mm-dd)",
            ) from None
    return sorted(set(out))


def patient_index(visits: DataFrame, death: DataFrame, index_dates: Sequence[date]) -> DataFrame:
    """Rows of the ``patient`` cohort (columns :data:`INDEX_COLUMNS`)."""
    per_person = visits.groupBy("person_id").agg(
        F.min("start").alias("first_start"), F.max("start").alias("last_start")
    )
    if not index_dates:
        rows = per_person.select(
            "person_id",
            F.col("last_start").alias("index_time"),
            F.lit("last_visit_start").alias("index_rule"),
        )
    else:
        dates = F.array(*[F.lit(d.isoformat()) for d in index_dates])
        died = (
            death.select("person_id", event_time("death_datetime", "death_date").alias("died"))
            .groupBy("person_id")
            .agg(F.min("died").alias("died"))
        )
        rows = (
            per_person.join(died, "person_id", "left")
            .select(
                "person_id",
                "first_start",
                "died",
                F.explode(dates).cast("date").cast("timestamp").alias("index_time"),
            )
            .where(F.col("first_start") < F.col("index_time"))
            .where(F.col("died").isNull() | (F.col("died") >= F.col("index_time")))
            .select("person_id", "index_time", F.lit("settings_date").alias("index_rule"))
        )
    return rows.select(
        F.lit("patient").alias("cohort"),
        F.xxhash64("person_id", "index_time").alias("index_id"),
        "person_id",
        "index_time",
        F.lit(None).cast("bigint").alias("visit_occurrence_id"),
        "index_rule",
    )


def encounter_index(visits: DataFrame, mode: str) -> DataFrame:
    """Rows of the ``encounter`` cohort: inpatient visits at discharge or admission."""
    inpatient = visits.where(F.col("visit_concept_id").isin(*INPATIENT_CONCEPTS))
    at = F.col("end") if mode == "discharge" else F.col("start")
    return inpatient.select(
        F.lit("encounter").alias("cohort"),
        F.col("visit_occurrence_id").alias("index_id"),
        "person_id",
        at.alias("index_time"),
        "visit_occurrence_id",
        F.lit(mode).alias("index_rule"),
    )
