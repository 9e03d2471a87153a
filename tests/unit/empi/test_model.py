"""The shipped linkage model and the driver-side clustering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse.empi import clusters, model
from lakehouse.errors import ErrorCode, LakehouseError


def test_the_shipped_model_is_complete_and_versioned() -> None:
    m = model.load()
    assert m.version.startswith("empi-v1@")
    names = [c["output_column_name"] for c in m.settings["comparisons"]]
    assert names == ["id_card", "name", "birth", "sex", "phone", "address"]
    for comp in m.settings["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        assert abs(sum(lv["m_probability"] for lv in levels) - 1) < 1e-9
        assert all(0 < lv["u_probability"] <= 1 for lv in levels)
    assert 0 < m.prior < 1


def test_agreement_weighs_more_than_disagreement() -> None:
    m = model.load()
    for comp in m.settings["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        bf = [lv["m_probability"] / lv["u_probability"] for lv in levels]
        assert bf[0] > 1 > bf[-1], comp["output_column_name"]


def test_a_broken_model_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(model.settings()))  # untrained: no m/u
    with pytest.raises(LakehouseError) as caught:
        model.load(bad)
    assert caught.value.code is ErrorCode.EMPI_MODEL_INVALID
    with pytest.raises(LakehouseError) as caught:
        model.load(tmp_path / "missing.json")
    assert caught.value.code is ErrorCode.EMPI_MODEL_INVALID


def test_complete_fills_untrained_levels() -> None:
    untrained = model.settings()
    for comp in untrained["comparisons"]:
        for lv in comp["comparison_levels"]:
            if not lv.get("is_null_level"):
                lv["u_probability"] = 0.5
    done = model.complete(untrained)
    for comp in done["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        assert abs(sum(lv["m_probability"] for lv in levels) - 1) < 1e-9


def test_local_components_are_rooted_at_the_smallest_node() -> None:
    got = dict(clusters._components_locally([("c", "b"), ("b", "a"), ("x", "y"), ("z", "z")]))
    assert got == {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x", "z": "z"}
