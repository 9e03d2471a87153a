"""Feature settings and names (no JVM)."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.features import parse_versions
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.features.cohorts import parse_index_dates
from lakehouse.features.meds import FALLBACK_CODES
from lakehouse.settings import FeatureSettings
from lakehouse.tables.features.ml import HISTORY_COLUMNS, PATIENT_FEATURES, history_columns


def test_index_dates_parse_sorted_and_deduplicated() -> None:
    assert parse_index_dates(["2024-07-01", "2024-01-01", "2024-07-01"]) == [
        date(2024, 1, 1),
        date(2024, 7, 1),
    ]


def test_a_bad_index_date_is_a_config_error() -> None:
    with pytest.raises(LakehouseError) as exc:
        parse_index_dates(["01/07/2024"])
    assert exc.value.code is ErrorCode.CONFIG_INVALID


@pytest.mark.parametrize("bad", ["gold.person", "gold.person=x", "=3"])
def test_gold_version_pairs(bad: str) -> None:
    assert parse_versions(["gold.person=3", "gold.death=0"]) == {"gold.person": 3, "gold.death": 0}
    with pytest.raises(LakehouseError) as exc:
        parse_versions([bad])
    assert exc.value.code is ErrorCode.CONFIG_INVALID


def test_wide_columns_are_the_fixed_history_features() -> None:
    assert set(HISTORY_COLUMNS) <= set(PATIENT_FEATURES.column_names)
    assert history_columns([7])[0] == "visits_inpatient_7d"
    assert FeatureSettings().windows_days == [30, 180, 365]  # type: ignore[call-arg]
    assert FALLBACK_CODES[9201] == "Visit//IP"
