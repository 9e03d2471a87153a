"""The prediction task: type 2 diabetes recorded at or after the index time (docs/models.md).

Cohort: every row of ``features.patient_features`` (a person at an index time; by default the
start of the person's last visit). Features: the row's fixed columns (age, sex and the
30/180/365-day utilisation and domain counts), all computed from events strictly before the
index time. No per-concept feature is used, so no feature names the diagnosis itself.

Label rule: 1 when ``gold.condition_occurrence`` holds a row of the person with an event time
(``condition_start_datetime``, else 23:59:59 of ``condition_start_date``) at or after the index
time whose ``condition_source_value`` (``ICD10:E11.900``, the silver code) or whose concept's
``<vocabulary_id>:<concept_code>`` in ``gold.concept`` (through ``condition_concept_id`` or
``condition_source_concept_id``, so a member's local code mapped to E11 counts) starts with one
of ``models.label_codes`` (default ``ICD10:E11``, type 2 diabetes); else 0. Labels never feed
a feature.

Split: by person, ``pmod(xxhash64(person_id, features.split_seed), 10)``: 0-7 train, 8 tuning,
9 held_out, the same split as the MEDS export, so every row of a person is in one split.

Both inputs are read ``VERSION AS OF`` a pinned Delta version, which the run logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.features.events import event_time
from lakehouse.features.meds import split_of
from lakehouse.features.tables import latest_version, read_version
from lakehouse.settings import Settings
from lakehouse.tables.features.ml import HISTORY_COLUMNS, PATIENT_FEATURES
from lakehouse.tables.gold.omop import SPECS

#: Model inputs: the fixed columns of features.patient_features (all doubles, null = unknown).
FEATURE_COLUMNS: tuple[str, ...] = ("age_years", "sex_male", *HISTORY_COLUMNS)
#: Columns of a cohort row besides the features.
ID_COLUMNS = ("index_id", "person_id", "index_time")
LABEL = "label"
SPLIT = "split"
SPLITS = ("train", "tuning", "held_out")
TASK = "t2dm_recorded"


@dataclass(frozen=True)
class TaskTables:
    """The tables a training run reads (tests point them at their own tables).

    ``concept`` is optional: without it only ``condition_source_value`` is matched.
    """

    features: str = PATIENT_FEATURES.name
    conditions: str = SPECS["condition_occurrence"].name
    concept: str | None = SPECS["concept"].name

    def params(self) -> dict[str, str]:
        """The table names as MLflow params (read back by :meth:`from_params`)."""
        return {
            "features_table": self.features,
            "conditions_table": self.conditions,
            "concept_table": self.concept or "",
        }

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TaskTables:
        """The tables a run logged with :meth:`params`."""
        return cls(
            features=params["features_table"],
            conditions=params["conditions_table"],
            concept=params.get("concept_table") or None,
        )


@dataclass(frozen=True)
class LabelRule:
    """Which condition rows make a positive label (setting ``models.label_codes``)."""

    codes: tuple[str, ...]

    @classmethod
    def from_settings(cls, cfg: Settings) -> LabelRule:
        """The rule configured in ``cfg.models``."""
        return cls(tuple(cfg.models.label_codes))

    def _any(self, value: Column) -> Column:
        tests = [value.startswith(code) for code in self.codes]
        return F.coalesce(reduce(lambda a, b: a | b, tests, F.lit(False)), F.lit(False))

    def target_concepts(self, concept: DataFrame) -> DataFrame:
        """``concept_id`` of every concept whose ``<vocabulary_id>:<concept_code>`` matches."""
        code = F.concat_ws(":", F.col("vocabulary_id"), F.col("concept_code"))
        return concept.where(self._any(code)).select(F.col("concept_id").alias("target_id"))

    def matching_rows(self, conditions: DataFrame, concept: DataFrame | None) -> DataFrame:
        """(person_id, event time) of the condition rows of the target diagnosis."""
        hit = self._any(F.col("condition_source_value"))
        if concept is not None:
            ids = self.target_concepts(concept).distinct()
            by_concept = conditions.join(
                F.broadcast(ids),
                (F.col("condition_concept_id") == F.col("target_id"))
                | (F.col("condition_source_concept_id") == F.col("target_id")),
                "left_semi",
            )
            rows = conditions.where(hit).unionByName(by_concept)
        else:
            rows = conditions.where(hit)
        return rows.select(
            F.col("person_id").alias("hit_person"),
            event_time("condition_start_datetime", "condition_start_date").alias("hit_time"),
        )

    def params(self) -> dict[str, str]:
        """The rule as MLflow params (read back by ``reproduce``)."""
        return {"label_codes": ",".join(self.codes)}

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> LabelRule:
        """The rule a run logged with :meth:`params`."""
        return cls(tuple(c for c in params.get("label_codes", "").split(",") if c))


def pin_versions(spark: SparkSession, tables: TaskTables) -> dict[str, int]:
    """The newest Delta version of each input (``LH-FEA-001`` when a required one does not
    exist; a missing concept table is left out)."""
    pinned = {name: latest_version(spark, name) for name in (tables.features, tables.conditions)}
    if tables.concept and spark.catalog.tableExists(tables.concept):
        pinned[tables.concept] = latest_version(spark, tables.concept)
    return pinned


def cohort(
    spark: SparkSession,
    tables: TaskTables,
    versions: Mapping[str, int],
    rule: LabelRule,
    split_seed: int,
) -> DataFrame:
    """One row per feature row: ids, :data:`FEATURE_COLUMNS`, ``label`` (0/1), ``split``.

    Reads every table at ``versions`` (``LH-FEA-002`` for a version a table lacks); the
    concept table only when ``versions`` names it.
    """
    feats = read_version(spark, tables.features, versions[tables.features]).select(
        *ID_COLUMNS, *(F.col(c).cast("double").alias(c) for c in FEATURE_COLUMNS)
    )
    conditions = read_version(spark, tables.conditions, versions[tables.conditions])
    concept = None
    if tables.concept and tables.concept in versions:
        concept = read_version(spark, tables.concept, versions[tables.concept])
    hits = rule.matching_rows(conditions, concept)
    positive = (
        feats.alias("f")
        .join(
            hits.alias("h"),
            (F.col("h.hit_person") == F.col("f.person_id"))
            & (F.col("h.hit_time") >= F.col("f.index_time")),
            "left_semi",
        )
        .select(F.col("index_id").alias("positive_id"))
    )
    return (
        feats.join(positive, feats["index_id"] == positive["positive_id"], "left")
        .withColumn(LABEL, F.col("positive_id").isNotNull().cast("int"))
        .withColumn(SPLIT, split_of(F.col("person_id"), split_seed))
        .drop("positive_id")
    )
