"""The linkage model: Splink settings (comparisons, blocking), training, Spark scoring.

The comparisons are Fellegi-Sunter comparisons whose levels are SQL over the feature
columns (``features.FEATURE_COLUMNS``) using only functions DuckDB and Spark both have
(``=``, ``substr``, ``levenshtein``, ``length``). Splink estimates the parameters (u by
random sampling, m by EM) on DuckDB or on Spark, and the trained model is a JSON file,
versioned as data (``lakehouse/empi/models/``). Scoring at scale evaluates the very same
level conditions as Spark SQL ``CASE`` expressions and adds the levels' log2 Bayes factors,
which is Splink's own ``predict`` arithmetic without term-frequency adjustments
(an oracle test checks both agree).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import sqlglot
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode, error

#: The shipped model (trained with ``lakehouse empi train`` on the synthetic hospital).
DEFAULT_MODEL = "empi-v1.json"

#: Blocking rules: candidate pairs share every column of at least one key (all non-null).
#: Each is an equi-join, so candidate generation scales with the block sizes, not n².
BLOCKING_KEYS: tuple[tuple[str, ...], ...] = (
    ("id_card",),
    ("phone",),
    ("birth", "surname_py"),
    ("name_py", "birth_year"),
    ("id14",),
)


def _level(sql: str, label: str, *, null: bool = False) -> dict[str, Any]:
    level: dict[str, Any] = {"sql_condition": sql, "label_for_charts": label}
    if null:
        level["is_null_level"] = True
    return level


def _comparison(name: str, description: str, *levels: dict[str, Any]) -> dict[str, Any]:
    return {
        "output_column_name": name,
        "comparison_description": description,
        "comparison_levels": [*levels, _level("ELSE", "all other")],
    }


def comparisons() -> list[dict[str, Any]]:
    """The Chinese-aware comparisons, most specific level first."""
    return [
        _comparison(
            "id_card",
            "身份证号: exact (valid and consistent with birth date and sex), exact, near",
            _level("id_card_l IS NULL OR id_card_r IS NULL", "null", null=True),
            _level(
                "id_card_l = id_card_r AND id_ok_l AND id_ok_r",
                "exact, valid check digit, birth date and sex agree",
            ),
            _level("id_card_l = id_card_r", "exact"),
            _level(
                "id14_l = id14_r AND levenshtein(id_card_l, id_card_r) <= 2",
                "same region and birth date, one digit off or two transposed",
            ),
        ),
        _comparison(
            "name",
            "姓名: characters (traditional folded), pinyin, near",
            _level("name_s_l IS NULL OR name_s_r IS NULL", "null", null=True),
            _level("name_s_l = name_s_r", "same characters"),
            _level("name_py_l = name_py_r", "same pinyin"),
            _level(
                "levenshtein(name_py_l, name_py_r) <= 2 OR levenshtein(name_s_l, name_s_r) <= 1",
                "one character or two pinyin letters off",
            ),
        ),
        _comparison(
            "birth",
            "出生日期: exact, one digit off",
            _level("birth_l IS NULL OR birth_r IS NULL", "null", null=True),
            _level("birth_l = birth_r", "exact"),
            _level("levenshtein(birth_l, birth_r) <= 1", "one digit off"),
        ),
        _comparison(
            "sex",
            "性别 (GB/T 2261.1, or the ID card's)",
            _level("sex_l IS NULL OR sex_r IS NULL", "null", null=True),
            _level("sex_l = sex_r", "exact"),
        ),
        _comparison(
            "phone",
            "电话: exact",
            _level("phone_l IS NULL OR phone_r IS NULL", "null", null=True),
            _level("phone_l = phone_r", "exact"),
        ),
        _comparison(
            "address",
            "地址: exact, same county",
            _level("addr_l IS NULL OR addr_r IS NULL", "null", null=True),
            _level("addr_l = addr_r", "exact"),
            _level("addr_area_l = addr_area_r", "same province, city and county"),
        ),
    ]


def _blocking_sql(key: tuple[str, ...]) -> str:
    return " AND ".join(f"l.{c} = r.{c}" for c in key)


def settings() -> dict[str, Any]:
    """Untrained Splink settings (dedupe of silver.patient features)."""
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "record_key",
        "probability_two_random_records_match": 1e-4,
        "comparisons": comparisons(),
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": _blocking_sql(k), "sql_dialect": "duckdb"} for k in BLOCKING_KEYS
        ],
        "retain_intermediate_calculation_columns": False,
        "retain_matching_columns": False,
    }


@dataclass(frozen=True)
class Model:
    """A trained model: its Splink settings dict, its version and where it came from."""

    settings: dict[str, Any]
    version: str
    path: str

    @property
    def prior(self) -> float:
        return float(self.settings["probability_two_random_records_match"])


def load(path: Path | None = None) -> Model:
    """The model at ``path`` (default: the shipped one). Version = file stem + content hash."""
    if path is None:
        text = (resources.files("lakehouse.empi") / "models" / DEFAULT_MODEL).read_text("utf-8")
        stem, where = Path(DEFAULT_MODEL).stem, f"lakehouse/empi/models/{DEFAULT_MODEL}"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise error(
                ErrorCode.EMPI_MODEL_INVALID, path=str(path), reason=type(exc).__name__
            ) from exc
        stem, where = path.stem, str(path)
    try:
        loaded = json.loads(text)
        model = Model(loaded, f"{stem}@{hashlib.sha256(text.encode()).hexdigest()[:12]}", where)
        level_weights(model)  # validates every level
    except (ValueError, KeyError, TypeError, sqlglot.errors.SqlglotError) as exc:
        raise error(ErrorCode.EMPI_MODEL_INVALID, path=where, reason=type(exc).__name__) from exc
    return model


def _bayes_factor(level: dict[str, Any]) -> float:
    if level.get("is_null_level"):
        return 1.0
    m, u = level.get("m_probability"), level.get("u_probability")
    if m is None or u is None:
        raise ValueError("level without trained m/u probabilities")
    return float(m) / float(u)


def level_weights(model: Model) -> list[tuple[str, list[tuple[str | None, float]]]]:
    """Per comparison, its levels as (Spark SQL condition or None for ELSE, log2 Bayes
    factor), in order. Pure Python: validates a model without a Spark session."""
    out = []
    for comp in model.settings["comparisons"]:
        levels: list[tuple[str | None, float]] = []
        for level in comp["comparison_levels"]:
            weight = math.log2(_bayes_factor(level))
            cond = level["sql_condition"].strip()
            if cond.upper() == "ELSE":
                levels.append((None, weight))
                break
            levels.append((sqlglot.transpile(cond, read="duckdb", write="spark")[0], weight))
        if not levels:
            raise ValueError("comparison without levels")
        out.append((str(comp["output_column_name"]), levels))
    return out


def score_terms(model: Model) -> list[tuple[str, Column]]:
    """One (name, Spark column) per comparison: the match weight (log2 Bayes factor) of the
    level the pair falls in. The level SQL is transpiled from Splink's DuckDB dialect."""
    terms = []
    for name, levels in level_weights(model):
        expr: Column | None = None
        for cond, weight in levels:
            w = F.lit(weight)
            if cond is None:
                expr = w if expr is None else expr.otherwise(w)
                break
            when = F.coalesce(F.expr(cond), F.lit(False))
            expr = F.when(when, w) if expr is None else expr.when(when, w)
        assert expr is not None
        terms.append((name, expr))
    return terms


def match_weight(model: Model) -> Column:
    """Spark: prior log-odds plus every comparison's weight, over ``<feature>_l/_r`` columns."""
    prior = math.log2(model.prior / (1 - model.prior))
    total = F.lit(prior)
    for _, term in score_terms(model):
        total = total + term
    return total


def probability(weight: Column) -> Column:
    """Spark: match probability of a match weight (2^w / (1 + 2^w))."""
    return F.lit(1.0) - F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), weight))


# --- training ------------------------------------------------------------------------------


def train(
    records: pd.DataFrame | Any,
    *,
    backend: str = "duckdb",
    spark: SparkSession | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Estimate the model's parameters with Splink; returns the model dict (save as JSON).

    ``records``: feature rows (``features.FEATURE_COLUMNS``) as pandas (duckdb) or a Spark
    DataFrame (spark). u by random sampling; the prior from exact ID-card matches at an
    assumed recall of 0.8 (IDs are missing or mistyped at member sites); m by two EM passes
    (blocked on the ID card, then on birth date + surname), each estimating the others.
    """
    from splink import Linker, block_on

    if backend == "spark":
        from splink import SparkAPI

        # The comparisons use built-in Spark SQL only: Splink's similarity jar is not needed.
        db_api: Any = SparkAPI(spark_session=spark, register_udfs_automatically=False)  # type: ignore[no-untyped-call]
    else:
        from splink import DuckDBAPI

        db_api = DuckDBAPI()
    try:
        linker = Linker(db_api.register(records), settings(), log_level=None)
        linker.training.estimate_probability_two_random_records_match(
            [block_on("id_card")], recall=0.8
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
        for rule in (block_on("id_card"), block_on("birth", "surname_py")):
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, record_sample_proportion=1.0
            )
        trained = linker.misc.save_model_to_json()
    except Exception as exc:  # Splink raises many types (EMTrainingException, SQL errors)
        raise error(ErrorCode.EMPI_TRAINING_FAILED, reason=type(exc).__name__) from exc
    return complete(trained)


#: m probabilities of levels that training data may never show for true matches (two
#: different valid ID numbers, a sex mismatch): expert values, used only where EM left the
#: level untrained, then each comparison's m are renormalized to sum to 1.
FALLBACK_M: dict[tuple[str, str], float] = {
    ("id_card", "exact"): 0.02,
    ("id_card", "same region and birth date, one digit off or two transposed"): 0.02,
    ("id_card", "all other"): 0.002,
    ("name", "one character or two pinyin letters off"): 0.02,
    ("name", "all other"): 0.002,
    ("birth", "one digit off"): 0.01,
    ("birth", "all other"): 0.002,
    ("sex", "all other"): 0.002,
    ("phone", "all other"): 0.25,
    ("address", "same province, city and county"): 0.15,
    ("address", "all other"): 0.1,
}


def complete(trained: dict[str, Any]) -> dict[str, Any]:
    """Fill levels training left without m or u (FALLBACK_M; u: the comparison's smallest
    trained u) and renormalize m, so every level of the saved model has both."""
    for comp in trained["comparisons"]:
        name = comp["output_column_name"]
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        us = [lv["u_probability"] for lv in levels if lv.get("u_probability")]
        for lv in levels:
            if lv.get("m_probability") is None:
                lv["m_probability"] = FALLBACK_M.get((name, lv["label_for_charts"]), 0.01)
            if lv.get("u_probability") is None:
                lv["u_probability"] = min(us) if us else 0.01
        total = sum(lv["m_probability"] for lv in levels)
        for lv in levels:
            lv["m_probability"] = lv["m_probability"] / total
    return trained


def predict_with_splink(records: pd.DataFrame, model: Model) -> pd.DataFrame:
    """Splink's own prediction on DuckDB (small inputs): the oracle the Spark scoring is
    tested against. Columns record_key_l, record_key_r, match_weight, match_probability."""
    from splink import DuckDBAPI, Linker

    db_api = DuckDBAPI()
    linker = Linker(db_api.register(records), model.settings, log_level=None)
    out: pd.DataFrame = linker.inference.predict().as_pandas_dataframe()  # type: ignore[no-untyped-call]
    return out.rename(columns={"record_key_l": "record_key_l", "record_key_r": "record_key_r"})[
        ["record_key_l", "record_key_r", "match_weight", "match_probability"]
    ]
