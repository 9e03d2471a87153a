"""Which columns carry Delta statistics: raw payloads none, keys and clustering always."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    LongType,
    MapType,
    StringType,
)

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS
from lakehouse.tables.registry import all_specs
from lakehouse.tables.spec import (
    STATS_COLUMNS_PROPERTY,
    Phi,
    TableSpec,
    column,
    stats_column_list,
)

ID = column("id", LongType(), "Row id.", nullable=False)
SITE = column("site", StringType(), "Site.")
RAW = column("raw", StringType(), "The record as delivered.", phi=Phi.RAW)
RAW_NOT_NULL = column("raw", StringType(), "The record as delivered.", nullable=False, phi=Phi.RAW)


def spec(*columns: Any, **overrides: Any) -> TableSpec:
    args: dict[str, Any] = {
        "name": "bronze.demo_rows",
        "columns": columns or (ID, SITE, RAW),
        "comment": "Demo table.",
        "keys": ("id",),
    }
    args.update(overrides)
    return TableSpec(**args)


def test_tables_with_raw_payloads_keep_statistics_off_them_and_on_their_layout() -> None:
    with_payload = [s for s in all_specs() if s.unindexed_columns]
    for s in with_payload:
        raw = [c.name for c in s.columns if c.metadata.get("phi") == Phi.RAW.value]
        assert s.unindexed_columns == tuple(raw)
        listed = s.table_properties[STATS_COLUMNS_PROPERTY].split(",")
        assert not set(raw) & set(listed), s.name
        assert set(s.keys) | set(s.cluster_by) <= set(listed), s.name
    # The file-fed bronze tables, whose rows keep the record as delivered (the HIS tables
    # copy database rows: no payload column, Delta's defaults).
    assert {s.name for s in with_payload if s.layer == "bronze"} == {
        "bronze.csv_rows",
        "bronze.emr_cda_documents",
        "bronze.fhir_resources",
        "bronze.lis_hl7v2_messages",
        "bronze.notes_documents",
        "bronze.pacs_dicom_instances",
        "bronze.quarantine",
    }
    fhir = next(s for s in with_payload if s.name == "bronze.fhir_resources")
    assert fhir.unindexed_columns == ("raw_json",)
    assert set(RECORD_KEYS) | set(BRONZE_CLUSTERING) <= set(fhir.stats_columns())


def test_a_table_without_payloads_keeps_delta_defaults() -> None:
    s = spec(ID, SITE)
    assert s.unindexed_columns == ()
    assert STATS_COLUMNS_PROPERTY not in s.table_properties


def test_the_list_leaves_out_what_delta_refuses_and_quotes_odd_names() -> None:
    s = spec(
        ID,
        column("site-code", StringType(), "Site code."),
        column("blob", BinaryType(), "Bytes."),
        column("flag", BooleanType(), "Flag."),
        column("tags", MapType(StringType(), StringType()), "Tags."),
        column("uids", ArrayType(StringType()), "UIDs."),
        RAW,
    )
    assert s.stats_columns() == ("id", "site-code")
    assert s.table_properties[STATS_COLUMNS_PROPERTY] == "id,`site-code`"
    assert stats_column_list(["a`b"]) == "`a``b`"
    partitioned = spec(ID, SITE, RAW, partition_by=("site",))
    assert partitioned.stats_columns() == ("id",)  # Delta refuses partition columns there
    assert spec().stats_columns(without=("site",)) == ("id",)


def test_keys_and_clustering_keep_statistics_beyond_the_first_32_columns() -> None:
    filler = tuple(column(f"c{i:02d}", StringType(), "Filler.") for i in range(40))
    late_key = column("late_id", LongType(), "Key after the filler.", nullable=False)
    late_site = column("late_site", StringType(), "Clustering column after the filler.")
    s = spec(RAW, *filler, late_key, late_site, keys=("late_id",), cluster_by=("late_site",))
    kept = s.stats_columns()
    # Delta's default covers the first 32 leaf columns (the payload is one of them).
    assert kept[:31] == tuple(f"c{i:02d}" for i in range(31))
    assert kept[31:] == ("late_id", "late_site")


@pytest.mark.parametrize(
    "overrides",
    [
        {"keys": ("id", "raw"), "columns": (ID, SITE, RAW_NOT_NULL)},
        {"cluster_by": ("raw",)},
        {"keys": (), "partition_by": ("raw",)},
    ],
)
def test_a_payload_cannot_be_a_key_clustering_or_partition_column(
    overrides: dict[str, Any],
) -> None:
    with pytest.raises(LakehouseError) as info:
        spec(**overrides)
    assert info.value.code is ErrorCode.TABLE_SPEC_INVALID
    assert "raw payload (no statistics)" in info.value.render()
