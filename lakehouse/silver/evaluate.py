"""Silver against the synthetic hospital's truth: precision and recall per table and source.

The truth (``OUT/truth/*.parquet``, docs/synthetic-hospital.md) says what really happened
and which source system delivered it: encounters, diagnoses and medications of the main
hospital come from its HIS, its labs from the LIS; a member site delivers everything by
FHIR or CSV. For each (table, institution, source system) this compares silver's current
rows (not deleted) with the truth, as multisets of a comparison key:

| table | key | also compared |
|---|---|---|
| encounter | visit number | class, start time (to the minute) |
| diagnosis | visit number, standard ICD-10 code | |
| lab_result | visit number, LOINC, collection time (minute) | value in the canonical unit (1%) |
| medication_order | visit number, ATC code | dose |

Values converted from another unit carry the rounding of the unit they were reported in
(0.72 mg/dL of creatinine is 63.2-64.1 umol/L), hence the 1% tolerance. A FHIR member's
encounter is known by its Encounter resource id, which the synthetic members write as
``enc-<visit number>`` (lakehouse/synthetic/fhir.py): the truth's visit numbers are
compared in that form for FHIR sources.

``matched`` counts keys present in both with equal compared values (each truth row matches
at most one silver row), so precision = matched / silver rows and recall = matched /
truth rows; a record delivered twice in silver lowers precision, one lost lowers recall.
All Spark; nothing but the small report is collected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

_MINUTE = "yyyy-MM-dd HH:mm"


@dataclass(frozen=True)
class TableScore:
    table: str
    institution_code: str
    source_system: str
    truth_rows: int
    silver_rows: int
    matched: int

    @property
    def precision(self) -> float:
        return self.matched / self.silver_rows if self.silver_rows else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth_rows if self.truth_rows else 1.0


def _minute(c: Column) -> Column:
    return F.date_format(c, _MINUTE)


def _truth(spark: SparkSession, truth_dir: Path, entity: str) -> DataFrame:
    return spark.read.parquet(str(truth_dir / f"{entity}.parquet"))


def _silver(spark: SparkSession, table: str) -> DataFrame:
    return spark.table(table).where(~F.col("is_deleted"))


def _score(
    table: str, truth: DataFrame, silver: DataFrame, key: list[str], value: str | None, tol: float
) -> list[TableScore]:
    """Multiset match of ``truth`` and ``silver`` on (institution, source, *key) [+ value]."""
    group = ["institution_code", "source_system", *key]
    ranked = []
    for df in (truth, silver):
        order = [F.col(value).asc_nulls_last()] if value else [F.lit(1)]
        w = F.row_number().over(Window.partitionBy(*group).orderBy(*order))
        ranked.append(df.select(*group, *([value] if value else []), w.alias("__n")))
    t, s = ranked
    on = [*group, "__n"]
    joined = t.alias("t").join(s.alias("s"), on, "inner")
    if value:
        tv, sv = F.col(f"t.{value}"), F.col(f"s.{value}")
        ok = (tv.isNull() & sv.isNull()) | (F.abs(tv - sv) <= F.abs(tv) * tol + 1e-9)
        joined = joined.where(ok)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for name, df in (("truth", t), ("silver", s), ("matched", joined)):
        for r in df.groupBy("institution_code", "source_system").count().collect():
            counts.setdefault((r[0], r[1]), {})[name] = int(r["count"])
    return [
        TableScore(table, inst, src, c.get("truth", 0), c.get("silver", 0), c.get("matched", 0))
        for (inst, src), c in sorted(counts.items())
    ]


def evaluate(spark: SparkSession, truth_dir: Path) -> list[TableScore]:
    """Score silver.encounter, diagnosis, lab_result and medication_order against the truth."""
    from lakehouse import terminology

    fhir = F.col("source_system") == "fhir"
    enc = _truth(spark, truth_dir, "encounters").withColumn(
        "visit_no", F.when(fhir, F.concat(F.lit("enc-"), "visit_no")).otherwise(F.col("visit_no"))
    )
    visits = enc.select("encounter_id", "visit_no", F.col("source_system").alias("record_source"))
    scores: list[TableScore] = []

    t_enc = enc.select(
        "institution_code",
        "source_system",
        F.col("visit_no").alias("visit"),
        F.concat_ws(
            "|",
            F.when(F.col("kind") == "O", "outpatient")
            .when(F.col("kind") == "E", "emergency")
            .when(F.col("kind") == "I", "inpatient"),
            _minute(F.col("start")),
        ).alias("what"),
    )
    s_enc = _silver(spark, "silver.encounter").select(
        "institution_code",
        "source_system",
        F.col("encounter_id").alias("visit"),
        F.concat_ws("|", "encounter_class", _minute(F.col("start_at"))).alias("what"),
    )
    enc_sources = t_enc.select("institution_code", "source_system").distinct()
    scores += _score(
        "silver.encounter",
        t_enc,
        s_enc.join(enc_sources, ["institution_code", "source_system"], "left_semi"),
        ["visit", "what"],
        None,
        0.0,
    )

    t_dx = (
        _truth(spark, truth_dir, "diagnoses")
        .join(visits, "encounter_id")
        .select(
            "institution_code",
            F.col("record_source").alias("source_system"),
            F.col("visit_no").alias("visit"),
            F.col("icd10").alias("code"),
        )
    )
    s_dx = _silver(spark, "silver.diagnosis").select(
        "institution_code",
        "source_system",
        F.col("encounter_id").alias("visit"),
        F.col("standard_code").alias("code"),
    )
    sources = t_dx.select("institution_code", "source_system").distinct()
    scores += _score(
        "silver.diagnosis",
        t_dx,
        s_dx.join(sources, ["institution_code", "source_system"], "left_semi"),
        ["visit", "code"],
        None,
        0.0,
    )

    labs = _truth(spark, truth_dir, "labs").join(
        visits.select("encounter_id", "visit_no"), "encounter_id"
    )
    t_lab = labs.select(
        "institution_code",
        "source_system",
        F.col("visit_no").alias("visit"),
        F.col("loinc").alias("code"),
        _minute(F.col("collected_at")).alias("at"),
        F.concat_ws("|", F.lit(""), terminology.to_ucum(F.col("unit"))).alias("unit"),
        F.col("value"),
    )
    s_lab = _silver(spark, "silver.lab_result").select(
        "institution_code",
        "source_system",
        F.col("encounter_id").alias("visit"),
        F.col("test_standard_code").alias("code"),
        _minute(F.col("collected_at")).alias("at"),
        F.concat_ws("|", F.lit(""), F.col("unit_std")).alias("unit"),
        F.col("value_std").alias("value"),
    )
    lab_sources = t_lab.select("institution_code", "source_system").distinct()
    scores += _score(
        "silver.lab_result",
        t_lab,
        s_lab.join(lab_sources, ["institution_code", "source_system"], "left_semi"),
        ["visit", "code", "at", "unit"],
        "value",
        0.01,
    )

    t_med = (
        _truth(spark, truth_dir, "medications")
        .join(visits, "encounter_id")
        .select(
            "institution_code",
            F.col("record_source").alias("source_system"),
            F.col("visit_no").alias("visit"),
            F.col("atc").alias("code"),
            F.col("dose"),
        )
    )
    s_med = _silver(spark, "silver.medication_order").select(
        "institution_code",
        "source_system",
        F.col("encounter_id").alias("visit"),
        F.col("drug_standard_code").alias("code"),
        F.col("dose"),
    )
    med_sources = t_med.select("institution_code", "source_system").distinct()
    scores += _score(
        "silver.medication_order",
        t_med,
        s_med.join(med_sources, ["institution_code", "source_system"], "left_semi"),
        ["visit", "code"],
        "dose",
        1e-6,
    )
    return scores


def describe(scores: list[TableScore]) -> str:
    lines = [
        f"{'table':<26} {'site':<6} {'source':<6} {'truth':>7} {'silver':>7} {'matched':>7} "
        f"{'precision':>9} {'recall':>7}"
    ]
    for s in scores:
        lines.append(
            f"{s.table:<26} {s.institution_code:<6} {s.source_system:<6} {s.truth_rows:>7} "
            f"{s.silver_rows:>7} {s.matched:>7} {s.precision:>9.4f} {s.recall:>7.4f}"
        )
    return "\n".join(lines)
