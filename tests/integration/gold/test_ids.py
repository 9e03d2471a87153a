"""OMOP id assignment: dense, stable, new keys above the maximum, one id per key."""

from __future__ import annotations

from typing import Any

from lakehouse.gold.ids import assign_ids, ids_of


def _keys(spark: Any, keys: list[str]) -> Any:
    return spark.createDataFrame([(k,) for k in keys], "natural_key string")


def _assigned(df: Any) -> dict[str, int]:
    return {r["natural_key"]: int(r["omop_id"]) for r in df.collect()}


def test_ids_are_dense_stable_and_grow_above_the_maximum(spark: Any, unique: str) -> None:
    table = f"t_{unique}"
    first = _assigned(
        assign_ids(spark, table, _keys(spark, ["a", "b", "c", "c", "d"]), run_id="r1", partitions=3)
    )
    assert sorted(first.values()) == [1, 2, 3, 4]
    assert set(first) == {"a", "b", "c", "d"}

    again = _assigned(assign_ids(spark, table, _keys(spark, ["d", "b", "e", "f"]), run_id="r2"))
    assert again["b"] == first["b"]
    assert again["d"] == first["d"]
    assert sorted([again["e"], again["f"]]) == [5, 6]

    stored = _assigned(ids_of(spark, table))
    assert len(stored) == 6
    assert len(set(stored.values())) == 6


def test_tables_number_independently(spark: Any, unique: str) -> None:
    one = _assigned(assign_ids(spark, f"x_{unique}", _keys(spark, ["k"]), run_id="r"))
    two = _assigned(assign_ids(spark, f"y_{unique}", _keys(spark, ["k"]), run_id="r"))
    assert one == two == {"k": 1}
