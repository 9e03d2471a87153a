"""Units: spellings to UCUM, and values to each analyte's canonical UCUM unit.

:func:`to_ucum` normalizes a spelling (case, spaces, ``μ``/``µ`` -> ``u``, ``^`` -> ``*``,
a leading ``x``/``×`` before ``10``) and looks it up in ``data/unit_spellings.csv``; an
unknown spelling gives null. :func:`normalize_units` joins ``vocab.unit_conversion``
(broadcast: it is a few hundred rows): an analyte-specific conversion first, else a generic
(``*``) one whose target is the analyte's canonical unit. ``value_std = round(value * factor
+ offset, 6)``.
"""

from __future__ import annotations

import csv
import re
from functools import cache

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.tables.vocab.concepts import UNIT_CONVERSION
from lakehouse.terminology.vocabularies import DATA

#: Digits value_std keeps (float noise of the factors never shows).
DIGITS = 6
UNIT_STATUSES = ("canonical", "converted", "unknown_unit", "no_value")


def spelling_key(unit: str) -> str:
    """The normalized form of a unit spelling used as lookup key (Python side)."""
    s = re.sub(r"\s+", "", unit).lower()
    s = s.translate(str.maketrans("μµ^×", "uu*x"))
    return re.sub(r"^x(?=10)", "", s)


def _spelling_key_col(unit: Column) -> Column:
    """:func:`spelling_key` as a Spark expression (same rules, bit for bit)."""
    s = F.lower(F.regexp_replace(unit, r"\s+", ""))
    s = F.translate(s, "μµ^×", "uu*x")
    return F.regexp_replace(s, r"^x(?=10)", "")


@cache
def spellings() -> dict[str, str]:
    """Normalized spelling -> UCUM code, from ``data/unit_spellings.csv``."""
    with (DATA / "unit_spellings.csv").open(encoding="utf-8", newline="") as fh:
        return {spelling_key(r["spelling"]): r["ucum"] for r in csv.DictReader(fh)}


def ucum_units() -> frozenset[str]:
    """The UCUM codes the spelling table produces (what conversions may name)."""
    return frozenset(spellings().values())


def to_ucum(unit: Column) -> Column:
    """UCUM code of a unit spelling ('10^9/L' -> '10*9/L', 'μmol/L' -> 'umol/L'); null if
    the spelling is unknown or empty."""
    pairs: list[Column] = []
    for key, code in sorted(spellings().items()):
        pairs += [F.lit(key), F.lit(code)]
    return F.create_map(*pairs)[_spelling_key_col(unit)]


def normalize_units(
    spark: SparkSession,
    df: DataFrame,
    *,
    analyte: Column,
    value: Column,
    unit: Column,
    prefix: str,
) -> DataFrame:
    """Add ``{prefix}value_std`` (double, canonical unit), ``{prefix}unit_std`` (UCUM) and
    ``{prefix}unit_status``:

    - ``no_value``: the value is null or not a number (comparators like ``<0.5`` included;
      the parser keeps those in its own column);
    - ``canonical``: the unit is the analyte's canonical unit, or a known UCUM unit of an
      analyte with no canonical unit declared (value kept as is);
    - ``converted``: a conversion to the canonical unit applied;
    - ``unknown_unit``: the spelling is unknown, or the analyte has no conversion from it
      (``value_std`` null, ``unit_std`` the UCUM code if the spelling was known).

    Row count unchanged: the conversion table has one row per (analyte, from_unit).
    """
    from lakehouse.terminology.store import ensure_vocab_tables

    ensure_vocab_tables(spark)
    t = f"__{prefix}u_"
    conv = spark.table(UNIT_CONVERSION.name)
    specific = conv.where(F.col("analyte") != "*")
    canon = F.broadcast(
        specific.where(F.col("from_unit") == F.col("to_unit")).select(
            F.col("analyte").alias(f"{t}ca"), F.col("to_unit").alias(f"{t}canon")
        )
    )
    spec = F.broadcast(
        specific.select(
            F.col("analyte").alias(f"{t}sa"),
            F.col("from_unit").alias(f"{t}sf"),
            F.col("to_unit").alias(f"{t}st"),
            F.col("factor").alias(f"{t}sfac"),
            F.coalesce(F.col("offset"), F.lit(0.0)).alias(f"{t}soff"),
        )
    )
    generic = F.broadcast(
        conv.where(F.col("analyte") == "*").select(
            F.col("from_unit").alias(f"{t}gf"),
            F.col("to_unit").alias(f"{t}gt"),
            F.col("factor").alias(f"{t}gfac"),
            F.coalesce(F.col("offset"), F.lit(0.0)).alias(f"{t}goff"),
        )
    )
    base = df.withColumns(
        {
            f"{t}a": F.trim(analyte.cast("string")),
            f"{t}v": _to_double(value),
            f"{t}u": to_ucum(unit.cast("string")),
        }
    )
    joined = (
        base.join(canon, F.col(f"{t}a") == F.col(f"{t}ca"), "left")
        .join(
            spec,
            (F.col(f"{t}a") == F.col(f"{t}sa")) & (F.col(f"{t}u") == F.col(f"{t}sf")),
            "left",
        )
        .join(
            generic,
            (F.col(f"{t}u") == F.col(f"{t}gf")) & (F.col(f"{t}canon") == F.col(f"{t}gt")),
            "left",
        )
    )
    v, u, canon_u = F.col(f"{t}v"), F.col(f"{t}u"), F.col(f"{t}canon")
    factor = F.coalesce(F.col(f"{t}sfac"), F.col(f"{t}gfac"))
    offset = F.coalesce(F.col(f"{t}soff"), F.col(f"{t}goff"))
    status = (
        F.when(v.isNull(), F.lit("no_value"))
        .when(u.isNull(), F.lit("unknown_unit"))
        .when(canon_u.isNull() | (u == canon_u), F.lit("canonical"))
        .when(factor.isNotNull(), F.lit("converted"))
        .otherwise(F.lit("unknown_unit"))
    )
    value_std = (
        F.when(status == "canonical", v)
        .when(status == "converted", F.round(v * factor + offset, DIGITS))
        .cast("double")
    )
    unit_std = F.when(status.isin("canonical", "converted"), F.coalesce(canon_u, u)).otherwise(u)
    helper = [c for c in joined.columns if c.startswith(t)]
    return joined.withColumns(
        {
            f"{prefix}value_std": value_std,
            f"{prefix}unit_std": unit_std,
            f"{prefix}unit_status": status,
        }
    ).drop(*helper)


def _to_double(value: Column) -> Column:
    """A number from a numeric column or a numeric string; anything else null (no error)."""
    text = F.trim(value.cast("string"))
    return F.when(text.rlike(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"), text.cast("double"))
