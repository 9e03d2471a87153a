"""TableSpec validation: every mistake is refused at import time with LH-TBL-001."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql.types import IntegerType, LongType, StringType

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.tables.registry import all_specs
from lakehouse.tables.spec import Phi, TableSpec, column

ID = column("id", LongType(), "Row id.", nullable=False)
NAME = column("name", StringType(), "Person name.", phi=Phi.NAME, ws445="DE02.01.039.00")


def spec(**overrides: Any) -> TableSpec:
    args: dict[str, Any] = {
        "name": "silver.person_demo",
        "columns": (ID, NAME),
        "comment": "Demo table.",
        "keys": ("id",),
    }
    args.update(overrides)
    return TableSpec(**args)


def test_valid_spec_exposes_its_parts() -> None:
    s = spec(cluster_by=("id",), properties={"delta.targetFileSize": "128mb"})
    assert s.schema_name == "silver"
    assert s.table_name == "person_demo"
    assert s.column_names == ["id", "name"]
    assert s.phi_columns == {"name": Phi.NAME}
    assert s.column("name").metadata["ws445"] == "DE02.01.039.00"
    assert s.table_properties == {
        "delta.enableChangeDataFeed": "true",
        "delta.targetFileSize": "128mb",
    }


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"name": "Person"}, "name must be"),
        ({"name": "scratch.person"}, "layer must be"),
        ({"comment": " "}, "needs a comment"),
        ({"columns": ()}, "needs columns"),
        ({"columns": (ID, ID)}, "duplicate column"),
        ({"columns": (ID, column("x", IntegerType(), ""))}, "column x needs a comment"),
        ({"keys": ("nope",)}, "keys column nope"),
        ({"keys": ("name",)}, "non-nullable"),
        ({"cluster_by": ("nope",)}, "cluster_by column nope"),
        ({"sequence_by": "nope"}, "sequence_by column nope"),
        ({"partition_by": ("name",), "cluster_by": ("id",)}, "either partitioned or clustered"),
        ({"append_only": True}, "append-only tables have no merge keys"),
    ],
)
def test_invalid_specs_are_refused(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(LakehouseError) as info:
        spec(**overrides)
    assert info.value.code is ErrorCode.TABLE_SPEC_INVALID
    assert reason in info.value.render()


def test_unknown_phi_tag_is_refused() -> None:
    bad = column("x", StringType(), "X.")
    bad.metadata["phi"] = "secret-ish"
    with pytest.raises(LakehouseError) as info:
        spec(columns=(ID, bad))
    assert info.value.code is ErrorCode.TABLE_SPEC_INVALID


def test_registry_finds_every_spec_once() -> None:
    names = [s.name for s in all_specs()]
    assert "ops.job_runs" in names
    assert names == sorted(set(names))
