"""Gold against the synthetic hospital's truth: do the OMOP counts reconcile?

Per institution, the truth manifest (``OUT/truth/*.parquet``, docs/synthetic-hospital.md)
says how many visits, diagnoses, lab results and medication orders really happened; gold
must hold exactly as many (one row per fact, whichever sources delivered it). Persons are
compared over the whole alliance: one OMOP person per real person. Lab results are the
measurements of type Lab (vital signs are measurements too, but the truth does not list
them); diagnoses are condition_occurrence rows plus diagnoses routed to observation.
A defect the dirty hospital injects (a message quarantined in bronze) makes its fact
missing from gold, so the dirty demo does not reconcile exactly; the clean one must.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.gold import concepts as C
from lakehouse.tables.gold import omop


@dataclass(frozen=True)
class CountCheck:
    what: str
    institution_code: str
    truth: int
    gold: int

    @property
    def equal(self) -> bool:
        return self.truth == self.gold


def _truth(spark: SparkSession, truth_dir: Path, entity: str) -> DataFrame:
    return spark.read.parquet(str(truth_dir / f"{entity}.parquet"))


def _per_institution(df: DataFrame, col: str) -> dict[str, int]:
    rows = df.groupBy(col).count().collect()  # one row per institution
    return {str(r[col]): int(r["count"]) for r in rows}


def reconcile(spark: SparkSession, truth_dir: Path) -> list[CountCheck]:
    """Truth and gold counts: persons (all), then visits, conditions, lab measurements and
    drug exposures per institution."""
    checks = [
        CountCheck(
            "persons",
            "*",
            _truth(spark, truth_dir, "persons").select("person_id").distinct().count(),
            spark.table(omop.PERSON.name).count(),
        )
    ]
    conditions = (
        spark.table(omop.CONDITION_OCCURRENCE.name)
        .select("etl_institution_code")
        .unionByName(
            spark.table(omop.OBSERVATION.name)
            .where(F.col("etl_source_table") == "silver.diagnosis")
            .select("etl_institution_code")
        )
    )
    labs = spark.table(omop.MEASUREMENT.name).where(F.col("measurement_type_concept_id") == C.LAB)
    pairs = (
        ("visits", "encounters", spark.table(omop.VISIT_OCCURRENCE.name)),
        ("conditions", "diagnoses", conditions),
        ("lab measurements", "labs", labs),
        ("drug exposures", "medications", spark.table(omop.DRUG_EXPOSURE.name)),
    )
    for what, entity, gold in pairs:
        truth = _per_institution(_truth(spark, truth_dir, entity), "institution_code")
        have = _per_institution(gold, "etl_institution_code")
        for inst in sorted(set(truth) | set(have)):
            checks.append(CountCheck(what, inst, truth.get(inst, 0), have.get(inst, 0)))
    return checks


def describe(checks: list[CountCheck]) -> str:
    lines = ["gold vs truth (counts):", f"  {'what':<18} {'site':<6} {'truth':>7} {'gold':>7}"]
    for c in checks:
        mark = "" if c.equal else "  <- differs"
        lines.append(f"  {c.what:<18} {c.institution_code:<6} {c.truth:>7} {c.gold:>7}{mark}")
    return "\n".join(lines)
