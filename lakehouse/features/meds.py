"""MEDS: the gold tables as a Medical Event Data Standard event stream, and its export.

Schema followed: MEDS 0.4 (the ``meds`` package 0.4.x): data files with ``subject_id``
int64, ``time`` timestamp[us] (no zone: hospital wall-clock time; null for static events),
``code`` string, ``numeric_value`` float32 and ``text_value`` string, each subject in one
file, its rows contiguous and sorted by time; ``metadata/codes.parquet`` (code, description,
parent_codes), ``metadata/subject_splits.parquet`` (subject_id, split in train / tuning /
held_out) and ``metadata/dataset.json``.

Codes are ``<vocabulary_id>//<concept_code>`` of the row's standard concept in gold.concept
(else its source concept; else ``OMOP_CONCEPT//<id>``), plus ``MEDS_BIRTH``, ``MEDS_DEATH``,
visits as their visit concept (``Visit//IP``) at the start and ``<code>//END`` at the end.
No free text leaves: text_value holds coded values (value_as_concept_id) only.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import __version__
from lakehouse.errors import ErrorCode, error
from lakehouse.features.events import birth_time, clinical_events, event_time, visits
from lakehouse.features.tables import FeatureTables, Gold, latest_version, read_version

logger = logging.getLogger(__name__)

MEDS_VERSION = "0.4.1"
BIRTH, DEATH = "MEDS_BIRTH", "MEDS_DEATH"
#: Codes of OMOP core concepts when gold.concept does not hold them.
FALLBACK_CODES = {
    9201: "Visit//IP", 9202: "Visit//OP", 9203: "Visit//ER", 262: "Visit//ERIP",
    8507: "Gender//M", 8532: "Gender//F",
}  # fmt: skip
#: Split of a subject: pmod(xxhash64(subject_id, seed), 10): 0-7 train, 8 tuning, 9 held_out.
SPLITS = (("train", 8), ("tuning", 1), ("held_out", 1))

MEDS_COLUMNS = ("event_key", "subject_id", "time", "code", "numeric_value", "text_value")


def _codes(gold: Gold) -> DataFrame | None:
    if gold.concept is None:
        return None
    return gold.concept.select(
        F.col("concept_id").alias("c_id"),
        F.concat_ws("//", "vocabulary_id", "concept_code").alias("c_code"),
    )


def _with_code(df: DataFrame, id_col: str, out: str, codes: DataFrame | None) -> DataFrame:
    """Add ``out``: the MEDS code of concept column ``id_col`` (null for a null id)."""
    fallback = F.create_map(*[x for k, v in FALLBACK_CODES.items() for x in (F.lit(k), F.lit(v))])
    generic = F.when(F.col(id_col).isNotNull(), F.concat(F.lit("OMOP_CONCEPT//"), F.col(id_col)))
    if codes is None:
        return df.withColumn(out, F.coalesce(fallback[F.col(id_col)], generic))
    joined = df.join(codes, F.col(id_col) == F.col("c_id"), "left")
    return joined.withColumn(
        out, F.coalesce(F.col("c_code"), fallback[F.col(id_col)], generic)
    ).drop("c_id", "c_code")


def meds_events(gold: Gold) -> DataFrame:
    """Every gold event as a MEDS row (columns :data:`MEDS_COLUMNS`)."""
    codes = _codes(gold)
    person = gold.person
    births = person.select(
        F.concat(F.lit("person:"), "person_id", F.lit(":birth")).alias("event_key"),
        F.col("person_id").alias("subject_id"),
        birth_time(person).alias("time"),
        F.lit(BIRTH).alias("code"),
    ).where(F.col("time").isNotNull())
    genders = _with_code(
        person.where(F.col("gender_concept_id") > 0).select(
            F.concat(F.lit("person:"), "person_id", F.lit(":gender")).alias("event_key"),
            F.col("person_id").alias("subject_id"),
            F.lit(None).cast("timestamp").alias("time"),
            "gender_concept_id",
        ),
        "gender_concept_id",
        "code",
        codes,
    ).drop("gender_concept_id")
    deaths = gold.death.select(
        F.concat(F.lit("death:"), "person_id").alias("event_key"),
        F.col("person_id").alias("subject_id"),
        event_time("death_datetime", "death_date").alias("time"),
        F.lit(DEATH).alias("code"),
    )
    v = _with_code(visits(gold), "visit_concept_id", "v_code", codes)
    visit_rows = v.select(
        F.concat(F.lit("visit_occurrence:"), "visit_occurrence_id", F.lit(":start")).alias(
            "event_key"
        ),
        F.col("person_id").alias("subject_id"),
        F.col("start").alias("time"),
        F.col("v_code").alias("code"),
    ).unionByName(
        v.select(
            F.concat(F.lit("visit_occurrence:"), "visit_occurrence_id", F.lit(":end")).alias(
                "event_key"
            ),
            F.col("person_id").alias("subject_id"),
            F.col("end").alias("time"),
            F.concat(F.col("v_code"), F.lit("//END")).alias("code"),
        )
    )
    ev = _with_code(clinical_events(gold), "concept_id", "e_code", codes)
    ev = _with_code(ev, "value_concept_id", "v_code", codes)
    clinical = ev.select(
        F.concat_ws(":", "source_table", "row_id").alias("event_key"),
        F.col("person_id").alias("subject_id"),
        "time",
        F.coalesce(F.col("e_code"), F.concat(F.upper("domain"), F.lit("//UNMAPPED"))).alias("code"),
        F.col("value").cast("float").alias("numeric_value"),
        F.col("v_code").alias("text_value"),
    )
    simple = [
        df.withColumn("numeric_value", F.lit(None).cast("float")).withColumn(
            "text_value", F.lit(None).cast("string")
        )
        for df in (births, genders, deaths, visit_rows)
    ]
    out = reduce(DataFrame.unionByName, [*simple, clinical])
    return out.select(*MEDS_COLUMNS).where(F.col("subject_id").isNotNull())


def split_of(subject_id: Column, seed: int) -> Column:
    """train / tuning / held_out, fixed by a hash of the subject id (and the seed)."""
    bucket = F.pmod(F.xxhash64(subject_id, F.lit(seed)), F.lit(10))
    return (
        F.when(bucket < 8, F.lit("train")).when(bucket < 9, F.lit("tuning")).otherwise("held_out")
    )


@dataclass(frozen=True)
class MedsExport:
    """What :func:`export_meds` wrote."""

    out_dir: Path
    table: str
    version: int
    events: int
    subjects: int
    codes: int
    shards: int

    def describe(self) -> str:
        return (
            f"MEDS {MEDS_VERSION} export of {self.table}@v{self.version} to {self.out_dir}: "
            f"{self.events} events, {self.subjects} subjects, {self.codes} codes, "
            f"{self.shards} data shards"
        )


def _spark_single(df: DataFrame, tmp: Path, target: Path) -> None:
    """Write ``df`` as one Parquet file at ``target`` (through a Spark folder)."""
    df.coalesce(1).write.mode("overwrite").parquet(str(tmp))
    parts = sorted(tmp.glob("part-*.parquet"))
    target.parent.mkdir(parents=True, exist_ok=True)
    if parts:
        shutil.move(str(parts[0]), target)
    shutil.rmtree(tmp, ignore_errors=True)


def export_meds(
    spark: SparkSession,
    out_dir: Path | str,
    *,
    tables: FeatureTables | None = None,
    version: int | None = None,
    shards: int = 4,
    split_seed: int = 0,
    overwrite: bool = False,
    concept_table: str | None = None,
) -> MedsExport:
    """Write ``features.meds_events`` (at Delta ``version``, default the newest) as MEDS.

    ``out_dir`` must be a path every Spark executor and this process can write (local
    mode: any local folder). Data shards are ranges of subject ids, so a subject is in one
    file only; rows within a shard are sorted by subject_id, time (static first), code.
    Descriptions in codes.parquet come from ``concept_table`` (default: the build's gold
    concept table) when it exists.
    """
    tables = tables or FeatureTables()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise error(ErrorCode.FEATURES_EXPORT_TARGET, path=str(out), reason="not empty")
        if not (out / "metadata" / "dataset.json").exists():
            raise error(
                ErrorCode.FEATURES_EXPORT_TARGET,
                path=str(out),
                reason="not a previous MEDS export (no metadata/dataset.json)",
            )
        shutil.rmtree(out)
    name = tables.meds_events.name
    v = latest_version(spark, name) if version is None else int(version)
    events = read_version(spark, name, v).select(
        F.col("subject_id").cast("bigint").alias("subject_id"),
        F.col("time").cast("timestamp_ntz").alias("time"),
        F.col("code").cast("string").alias("code"),
        F.col("numeric_value").cast("float").alias("numeric_value"),
        F.col("text_value").cast("string").alias("text_value"),
    )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "_spark"
    (
        events.repartitionByRange(shards, "subject_id")
        .sortWithinPartitions("subject_id", F.col("time").asc_nulls_first(), "code")
        .write.mode("overwrite")
        .parquet(str(tmp / "data"))
    )
    data = out / "data"
    data.mkdir()
    parts = sorted((tmp / "data").glob("part-*.parquet"))
    for i, part in enumerate(parts):
        shutil.move(str(part), data / f"{i}.parquet")

    subjects = events.select("subject_id").distinct()
    _spark_single(
        subjects.select(
            "subject_id", split_of(F.col("subject_id"), split_seed).alias("split")
        ).orderBy("subject_id"),
        tmp / "splits",
        out / "metadata" / "subject_splits.parquet",
    )
    codes = events.select("code").distinct()
    concept_name = concept_table or tables.gold["concept"]
    if spark.catalog.tableExists(concept_name):
        names = (
            spark.table(concept_name)
            .select(
                F.concat_ws("//", "vocabulary_id", "concept_code").alias("code"),
                F.col("concept_name").alias("description"),
            )
            .dropDuplicates(["code"])
        )
        codes = codes.join(names, "code", "left")
    else:
        codes = codes.withColumn("description", F.lit(None).cast("string"))
    described = codes.select(
        "code",
        F.when(F.col("code") == BIRTH, F.lit("Birth"))
        .when(F.col("code") == DEATH, F.lit("Death"))
        .otherwise(F.col("description"))
        .alias("description"),
        F.array().cast("array<string>").alias("parent_codes"),
    ).orderBy("code")
    _spark_single(described, tmp / "codes", out / "metadata" / "codes.parquet")
    shutil.rmtree(tmp, ignore_errors=True)

    counts = events.agg(
        F.count(F.lit(1)).alias("events"), F.count_distinct("subject_id").alias("subjects")
    ).first()
    n_codes = codes.count()
    assert counts is not None
    meta = {
        "dataset_name": "clinical-lakehouse",
        "dataset_version": f"{name}@v{v}",
        "etl_name": "lakehouse features export-meds",
        "etl_version": __version__,
        "meds_version": MEDS_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
    }
    (out / "metadata" / "dataset.json").write_text(
        json.dumps(meta, indent=2) + "\n", encoding="utf-8"
    )
    report = MedsExport(
        out_dir=out,
        table=name,
        version=v,
        events=int(counts["events"]),
        subjects=int(counts["subjects"]),
        codes=n_codes,
        shards=len(parts),
    )
    logger.info("%s", report.describe())
    return report
