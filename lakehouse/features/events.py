"""Gold rows as timed events: the one place that decides when a row happened.

Leakage rule: a row with a date and no time happened at 23:59:59 of its date, so on its
index day a date-only record counts only for index times after the end of that day. Visits
keep start and end; the other clinical tables become one event per row with its domain,
concept (the standard concept, else the source concept) and numeric value.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.features.tables import Gold

#: OMOP visit concepts.
INPATIENT, OUTPATIENT, EMERGENCY, EMERGENCY_INPATIENT = 9201, 9202, 9203, 262
INPATIENT_CONCEPTS = (INPATIENT, EMERGENCY_INPATIENT)
MALE, FEMALE = 8507, 8532

#: The columns of :func:`clinical_events`.
EVENT_COLUMNS = (
    "person_id", "time", "domain", "concept_id", "value", "value_concept_id",
    "visit_occurrence_id", "row_id", "source_table",
)  # fmt: skip


def event_time(datetime_col: str, date_col: str) -> Column:
    """The row's datetime, else the end of its date (23:59:59)."""
    end_of_day = F.col(date_col).cast("timestamp") + F.expr("INTERVAL 86399 SECONDS")
    return F.coalesce(F.col(datetime_col), end_of_day)


def birth_time(person: DataFrame) -> Column:
    """Birth datetime, else 1 January / the first of the month of what is known."""
    made = F.make_date(
        F.col("year_of_birth"),
        F.coalesce(F.col("month_of_birth"), F.lit(1)),
        F.coalesce(F.col("day_of_birth"), F.lit(1)),
    ).cast("timestamp")
    return F.coalesce(person["birth_datetime"], made)


def visits(gold: Gold) -> DataFrame:
    """One row per visit: person, id, concept, start and end (end defaults to start)."""
    v = gold.visit.where(F.col("person_id").isNotNull())
    start = event_time("visit_start_datetime", "visit_start_date")
    end = event_time("visit_end_datetime", "visit_end_date")
    return v.select(
        "person_id",
        "visit_occurrence_id",
        F.coalesce(F.col("visit_concept_id"), F.lit(0)).alias("visit_concept_id"),
        start.alias("start"),
        F.greatest(F.coalesce(end, start), start).alias("end"),
        "care_site_id",
        "admitted_from_concept_id",
    ).where(F.col("start").isNotNull())


def _concept(standard: str, source: str) -> Column:
    return F.when(F.col(standard) > 0, F.col(standard)).otherwise(
        F.when(F.col(source) > 0, F.col(source))
    )


def _events(
    df: DataFrame,
    *,
    table: str,
    domain: str,
    id_col: str,
    concept: Column,
    time: Column,
    value: Column | None = None,
    value_concept: Column | None = None,
) -> DataFrame:
    return df.select(
        F.col("person_id").cast("bigint").alias("person_id"),
        time.alias("time"),
        F.lit(domain).alias("domain"),
        concept.cast("bigint").alias("concept_id"),
        (value if value is not None else F.lit(None)).cast("double").alias("value"),
        (value_concept if value_concept is not None else F.lit(None))
        .cast("bigint")
        .alias("value_concept_id"),
        F.col("visit_occurrence_id").cast("bigint").alias("visit_occurrence_id"),
        F.col(id_col).cast("bigint").alias("row_id"),
        F.lit(table).alias("source_table"),
    )


def clinical_events(gold: Gold) -> DataFrame:
    """Conditions, drugs, procedures, measurements and observations as timed events.

    ``concept_id`` is null when neither the standard nor the source concept is known;
    rows without a person or a time are left out (the quality job counts them).
    """
    parts = [
        _events(
            gold.condition,
            table="condition_occurrence",
            domain="condition",
            id_col="condition_occurrence_id",
            concept=_concept("condition_concept_id", "condition_source_concept_id"),
            time=event_time("condition_start_datetime", "condition_start_date"),
        ),
        _events(
            gold.drug,
            table="drug_exposure",
            domain="drug",
            id_col="drug_exposure_id",
            concept=_concept("drug_concept_id", "drug_source_concept_id"),
            time=event_time("drug_exposure_start_datetime", "drug_exposure_start_date"),
            value=F.col("quantity"),
        ),
        _events(
            gold.procedure,
            table="procedure_occurrence",
            domain="procedure",
            id_col="procedure_occurrence_id",
            concept=_concept("procedure_concept_id", "procedure_source_concept_id"),
            time=event_time("procedure_datetime", "procedure_date"),
        ),
        _events(
            gold.measurement,
            table="measurement",
            domain="measurement",
            id_col="measurement_id",
            concept=_concept("measurement_concept_id", "measurement_source_concept_id"),
            time=event_time("measurement_datetime", "measurement_date"),
            value=F.col("value_as_number"),
            value_concept=F.col("value_as_concept_id"),
        ),
        _events(
            gold.observation,
            table="observation",
            domain="observation",
            id_col="observation_id",
            concept=_concept("observation_concept_id", "observation_source_concept_id"),
            time=event_time("observation_datetime", "observation_date"),
            value=F.col("value_as_number"),
            value_concept=F.col("value_as_concept_id"),
        ),
    ]
    events = reduce(DataFrame.unionByName, parts)
    return events.where(F.col("person_id").isNotNull() & F.col("time").isNotNull())
