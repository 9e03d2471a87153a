"""k-anonymity of a de-identified view: the smallest equivalence class over its
quasi-identifiers, counted in persons (distinct tokens) where the view has a person column.

One Spark aggregation (group by the quasi-identifiers, then one summary row): no row of the
view reaches the driver. A view with no quasi-identifier is one class of all its records.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.governance.deid.views import ViewPlan


@dataclass(frozen=True)
class KReport:
    """The k-anonymity of one view (one row of ``dq.k_anonymity``)."""

    view: str
    source_table: str
    quasi_identifiers: tuple[str, ...]
    unit: str
    threshold: int
    k: int | None
    classes: int
    classes_below: int
    records: int
    records_below: int

    @property
    def passed(self) -> bool:
        return self.k is None or self.k >= self.threshold


def k_anonymity(spark: SparkSession, plan: ViewPlan, *, threshold: int) -> KReport:
    """The smallest class of ``plan.view`` over its quasi-identifiers (the view must exist)."""
    df = spark.table(plan.view)
    qi = plan.quasi_identifiers
    person = plan.person_column
    if person is not None:
        size = F.countDistinct(F.col(f"`{person}`")).alias("n")
        unit = "persons"
    else:
        size = F.count(F.lit(1)).alias("n")
        unit = "rows"
    grouped = df.groupBy(*[F.col(f"`{c}`") for c in qi]).agg(size) if qi else df.agg(size)
    classes = grouped.where(F.col("n") > 0)
    below = F.col("n") < threshold
    summary = classes.agg(
        F.min("n").alias("k"),
        F.count(F.lit(1)).alias("classes"),
        F.count(F.when(below, 1)).alias("classes_below"),
        F.sum("n").alias("records"),
        F.sum(F.when(below, F.col("n")).otherwise(0)).alias("records_below"),
    ).first()
    assert summary is not None  # a global aggregate always has one row
    return KReport(
        view=plan.view,
        source_table=plan.source.name,
        quasi_identifiers=tuple(qi),
        unit=unit,
        threshold=threshold,
        k=None if summary["k"] is None else int(summary["k"]),
        classes=int(summary["classes"] or 0),
        classes_below=int(summary["classes_below"] or 0),
        records=int(summary["records"] or 0),
        records_below=int(summary["records_below"] or 0),
    )
