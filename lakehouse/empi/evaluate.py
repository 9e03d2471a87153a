"""The index against a synthetic hospital's truth: pairwise precision and recall.

``OUT/truth/source_ids.parquet`` maps every (institution, source system, source id) the
sources delivered to the real person, with the recorded name, 身份证号 and phone (and their
variants); ``persons.parquet`` holds the rest of the demographics. ``patients_from_truth``
turns them into silver.patient-shaped rows (what the sources deliver), so the EMPI can be
tested and benchmarked without the silver job. Pairs are counted per cluster (n·(n-1)/2),
never materialized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.silver.conform import address_parts, id_card_validity


@dataclass(frozen=True)
class PairScores:
    """Pairwise linkage quality: pairs the index links, pairs the truth links, both."""

    predicted_pairs: int
    true_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def patients_from_truth(spark: SparkSession, truth_dir: Path) -> DataFrame:
    """silver.patient-shaped rows of every source id in the truth (plus ``person_id``)."""
    ids = spark.read.parquet(str(truth_dir / "source_ids.parquet"))
    persons = spark.read.parquet(str(truth_dir / "persons.parquet")).select(
        "person_id", "sex", "birth_date", "address"
    )
    df = ids.join(persons, "person_id")
    province, city, county = address_parts(F.col("address"))
    return df.select(
        "person_id",
        "institution_code",
        "source_system",
        F.col("source_id").alias("patient_id"),
        F.concat_ws("|", "institution_code", "source_id").alias("patient_key"),
        F.col("source_id").alias("source_record_id"),
        F.col("recorded_name").alias("name"),
        F.col("recorded_id_card").alias("id_card_no"),
        id_card_validity(F.col("recorded_id_card")).alias("id_card_valid"),
        F.when(F.col("sex") == "M", "1")
        .when(F.col("sex") == "F", "2")
        .otherwise("0")
        .alias("sex_code"),
        F.col("birth_date").cast("date").alias("birth_date"),
        F.col("recorded_phone").alias("phone"),
        "address",
        province.alias("address_province"),
        city.alias("address_city"),
        county.alias("address_county"),
        F.lit(False).alias("is_deleted"),
        F.lit("truth").alias("bronze_table"),
        F.to_timestamp(F.lit("2026-06-30 00:00:00")).alias("source_updated_at"),
    )


def truth_keys(patients: DataFrame) -> DataFrame:
    """(patient_key, true person) of :func:`patients_from_truth` rows.

    Keyed by ``<institution>|<patient id>``, so every silver source system of an
    institution (HIS, LIS, EMR at the main hospital) that carries that id is scored.
    """
    return patients.select("patient_key", F.col("person_id").alias("true_person")).distinct()


def _pairs(df: DataFrame, *group: str) -> int:
    counts = df.groupBy(*group).count()
    row = counts.select(F.sum(F.col("count") * (F.col("count") - 1) / 2)).first()
    return int(row[0] or 0) if row is not None else 0


def pairwise_scores(index: DataFrame, truth: DataFrame) -> PairScores:
    """Precision/recall of ``index`` (patient_key, person_id; one row per record) against
    ``truth`` (patient_key, true_person), over the records whose patient the truth knows."""
    both = index.select("patient_key", "person_id").join(truth, "patient_key")
    return PairScores(
        predicted_pairs=_pairs(both, "person_id"),
        true_pairs=_pairs(both, "true_person"),
        correct_pairs=_pairs(both, "person_id", "true_person"),
    )
