"""Standard codes, units and value domains, applied by the silver job to every source's rows.

Transforms write codes, units and sex as the source sent them; this module adds what the
terminology service knows (``lakehouse.terminology``): the standard concept of every coded
column (``map_codes``), lab values in the analyte's canonical UCUM unit
(``normalize_units``), GB/T 2261.1 sex codes, and the GB 11643 check of ID card numbers.
Codes no vocabulary maps are queued for review (``unmapped_codes``, then ``queue_unmapped``
once per run: ``record_unmapped``), never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.silver.conform import id_card_validity

if TYPE_CHECKING:
    from lakehouse.terminology.review import ReviewReport


@dataclass(frozen=True)
class Coded:
    """A coded column group of a silver table: its prefix and the event time it is valid on."""

    prefix: str
    on: str


CODED: dict[str, Coded] = {
    "silver.diagnosis": Coded("", "diagnosed_at"),
    "silver.procedure": Coded("", "performed_at"),
    "silver.vital_sign": Coded("", "measured_at"),
    "silver.lab_result": Coded("test_", "collected_at"),
    "silver.medication_order": Coded("drug_", "ordered_at"),
}


def standardize(spark: SparkSession, table: str, df: DataFrame) -> DataFrame:
    """``df`` (rows for ``table``) with the standard columns the job owns filled in."""
    from lakehouse import terminology

    if table == "silver.patient":
        return df.withColumn("sex_code", terminology.sex_gb2261(F.col("sex_source"))).withColumn(
            "id_card_valid",
            F.when(F.col("id_card_no").isNull(), F.lit(None)).otherwise(
                id_card_validity(F.col("id_card_no"))
            ),
        )
    coded = CODED.get(table)
    if coded is None:
        return df
    p = coded.prefix
    df = _drop_owned(df, p)
    # One spelling per vocabulary (RXNORM -> RxNorm, LN -> LOINC); unknown ones stay as sent.
    vocab = F.col(f"{p}source_vocabulary")
    df = df.withColumn(
        f"{p}source_vocabulary",
        F.coalesce(terminology.vocabulary_of(vocab, F.col("institution_code")), vocab),
    )
    df = terminology.map_codes(
        spark,
        df,
        code=F.col(f"{p}source_code"),
        vocabulary=F.col(f"{p}source_vocabulary"),
        # Codes are valid on the event's date; a source without one (a CSV export's
        # diagnoses) is checked on the date the version arrived.
        on_date=F.to_date(
            F.coalesce(F.col(coded.on), F.col("source_updated_at"), F.current_timestamp())
        ),
        prefix=p,
    )
    if table == "silver.lab_result":
        df = df.drop("value_std", "unit_std", "unit_status")
        loinc = F.when(F.col("test_standard_vocabulary") == "LOINC", F.col("test_standard_code"))
        df = terminology.normalize_units(
            spark,
            df,
            analyte=loinc,
            value=F.col("value_as_number"),
            unit=F.col("unit_source"),
            prefix="",
        )
    return df


def _drop_owned(df: DataFrame, prefix: str) -> DataFrame:
    owned = (
        "concept_id",
        "source_concept_id",
        "standard_code",
        "standard_vocabulary",
        "standard_name",
        "map_status",
    )
    return df.drop(*[f"{prefix}{c}" for c in owned])


def unmapped_condition(table: str) -> Column | None:
    """True for standardized rows of ``table`` with a code no vocabulary maps (None: the
    table has no coded columns)."""
    coded = CODED.get(table)
    if coded is None:
        return None
    p = coded.prefix
    return (F.col(f"{p}map_status") == "unmapped") & F.col(f"{p}source_code").isNotNull()


def unmapped_codes(table: str, df: DataFrame) -> DataFrame | None:
    """The unmapped codes of standardized ``df`` (rows for ``table``), one row per occurrence
    (``institution_code``, ``vocabulary``, ``code``, ``name``, ``seen_at``); None when the
    table has no coded columns. The job keeps them until :func:`queue_unmapped`."""
    coded = CODED.get(table)
    if coded is None:
        return None
    p = coded.prefix
    unmapped = unmapped_condition(table)
    assert unmapped is not None
    return df.where(unmapped).select(
        F.col("institution_code").cast("string").alias("institution_code"),
        F.col(f"{p}source_vocabulary").cast("string").alias("vocabulary"),
        F.col(f"{p}source_code").cast("string").alias("code"),
        F.col(f"{p}source_name").cast("string").alias("name"),
        F.coalesce(F.col(coded.on), F.col("source_updated_at")).cast("timestamp").alias("seen_at"),
    )


def queue_unmapped(spark: SparkSession, codes: Sequence[DataFrame]) -> ReviewReport | None:
    """Put ``codes`` (frames of :func:`unmapped_codes`) in the terminology review queue, in
    one MERGE (None: no frames, nothing done). A code's ``occurrences`` counts its rows in
    all of them together."""
    if not codes:
        return None
    from lakehouse import terminology
    from lakehouse.terminology.review import MAX_CODES

    rows = reduce(DataFrame.unionByName, codes)
    return terminology.record_unmapped(
        spark,
        rows,
        institution=F.col("institution_code"),
        vocabulary=F.col("vocabulary"),
        code=F.col("code"),
        name=F.col("name"),
        seen_at=F.col("seen_at"),
        # as many codes as one call per frame would queue
        max_codes=MAX_CODES * len(codes),
    )
