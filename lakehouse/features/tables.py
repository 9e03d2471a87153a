"""Where a feature build reads (gold tables) and writes (feature tables), and at which versions.

A build pins the Delta version of every gold table it reads before it starts and reads each
with ``VERSION AS OF``: concurrent gold writes never mix into one build, and the pinned
versions are recorded in ``features.builds`` so the same features can be rebuilt later.
Tests use :meth:`FeatureTables.suffixed` to read and write their own tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pyspark.sql import DataFrame, SparkSession

from lakehouse.errors import ErrorCode, error
from lakehouse.tables.features.ml import (
    ENCOUNTER_FEATURES,
    FEATURE_BUILDS,
    MEDS_EVENTS,
    PATIENT_FEATURE_VALUES,
    PATIENT_FEATURES,
    PATIENT_INDEX,
)
from lakehouse.tables.gold import omop
from lakehouse.tables.spec import TableSpec
from lakehouse.tables.versions import require_version

#: Gold tables a build reads; ``concept`` is optional (codes fall back to concept ids).
GOLD_INPUTS = (
    "person", "visit_occurrence", "condition_occurrence", "drug_exposure",
    "procedure_occurrence", "measurement", "observation", "death",
)  # fmt: skip
OPTIONAL_INPUTS = ("concept",)


@dataclass(frozen=True)
class FeatureTables:
    """The gold table names a build reads and the feature specs it writes."""

    gold: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType(
            {t: omop.SPECS[t].name for t in (*GOLD_INPUTS, *OPTIONAL_INPUTS)}
        )
    )
    patient_index: TableSpec = PATIENT_INDEX
    patient_features: TableSpec = PATIENT_FEATURES
    patient_feature_values: TableSpec = PATIENT_FEATURE_VALUES
    encounter_features: TableSpec = ENCOUNTER_FEATURES
    meds_events: TableSpec = MEDS_EVENTS
    builds: TableSpec = FEATURE_BUILDS

    @classmethod
    def suffixed(cls, suffix: str) -> FeatureTables:
        """Every table name with ``_<suffix>`` appended (isolated tables for tests)."""
        base = cls()
        out = {
            f.name: dataclasses.replace(
                getattr(base, f.name), name=f"{getattr(base, f.name).name}_{suffix}"
            )
            for f in dataclasses.fields(cls)
            if f.name != "gold"
        }
        gold = MappingProxyType({k: f"{v}_{suffix}" for k, v in base.gold.items()})
        return cls(gold=gold, **out)

    @property
    def outputs(self) -> tuple[TableSpec, ...]:
        """The snapshot tables of a build (not the build log)."""
        return (
            self.patient_index,
            self.patient_features,
            self.patient_feature_values,
            self.encounter_features,
            self.meds_events,
        )


def latest_version(spark: SparkSession, table: str) -> int:
    """The newest Delta version of ``table`` (``LH-FEA-001`` when it does not exist)."""
    if not spark.catalog.tableExists(table):
        raise error(ErrorCode.FEATURES_NO_INPUT, table=table)
    return require_version(spark, table)


def pin_versions(
    spark: SparkSession, tables: FeatureTables, given: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Gold table name -> Delta version to read: ``given`` ones, else the newest.

    Optional inputs that do not exist are left out.
    """
    given = dict(given or {})
    pinned: dict[str, int] = {}
    for logical, name in tables.gold.items():
        if logical in OPTIONAL_INPUTS and not spark.catalog.tableExists(name):
            continue
        pinned[name] = int(given[name]) if name in given else latest_version(spark, name)
    return pinned


def read_version(spark: SparkSession, table: str, version: int) -> DataFrame:
    """``table`` as of Delta ``version`` (``LH-FEA-002`` when there is no such version)."""
    if version > latest_version(spark, table) or version < 0:
        raise error(ErrorCode.FEATURES_VERSION_UNKNOWN, table=table, version=version)
    return spark.sql(f"SELECT * FROM {table} VERSION AS OF {int(version)}")  # noqa: S608 (a table name)


@dataclass(frozen=True)
class Gold:
    """The gold DataFrames of one build, each read at its pinned version."""

    person: DataFrame
    visit: DataFrame
    condition: DataFrame
    drug: DataFrame
    procedure: DataFrame
    measurement: DataFrame
    observation: DataFrame
    death: DataFrame
    concept: DataFrame | None


def read_gold(spark: SparkSession, tables: FeatureTables, versions: Mapping[str, int]) -> Gold:
    """Read every gold input at ``versions`` (from :func:`pin_versions`)."""

    def read(logical: str) -> DataFrame:
        name = tables.gold[logical]
        return read_version(spark, name, versions[name])

    concept_name = tables.gold["concept"]
    return Gold(
        person=read("person"),
        visit=read("visit_occurrence"),
        condition=read("condition_occurrence"),
        drug=read("drug_exposure"),
        procedure=read("procedure_occurrence"),
        measurement=read("measurement"),
        observation=read("observation"),
        death=read("death"),
        concept=read("concept") if concept_name in versions else None,
    )
