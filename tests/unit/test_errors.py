"""The error catalog: stable unique ids, safe templates, rendered doc is current."""

from __future__ import annotations

import re

import pytest

from lakehouse.errors import (
    SAFE_PARAMS,
    ErrorCode,
    LakehouseError,
    TableError,
    WriteConflictError,
    error,
)


def test_ids_are_unique_and_well_formed() -> None:
    ids = [c.id for c in ErrorCode]
    assert len(ids) == len(set(ids))
    for code_id in ids:
        assert re.fullmatch(r"LH-[A-Z]{3}-\d{3}", code_id), code_id


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.name)
def test_templates_use_only_safe_params(code: ErrorCode) -> None:
    assert set(code.params()) <= SAFE_PARAMS
    assert 400 <= code.http_status <= 599
    assert 1 <= code.exit_status <= 125


def test_message_renders_parameters_and_marks_missing_ones() -> None:
    exc = error(ErrorCode.JARS_MISSING, path="/x", names="a.jar")
    assert exc.code is ErrorCode.JARS_MISSING
    assert str(exc) == "[LH-ENV-003] Required JVM jars are missing from /x: a.jar."
    partial = LakehouseError(ErrorCode.JARS_MISSING, path="/x")
    assert partial.render().endswith(": ?.")


def test_unsafe_parameter_names_are_refused() -> None:
    with pytest.raises(TypeError, match="SAFE_PARAMS"):
        LakehouseError(ErrorCode.JOB_FAILED, patient_name="x")


def test_error_picks_the_class_of_the_area() -> None:
    assert isinstance(error(ErrorCode.DUPLICATE_KEYS, table="t"), TableError)
    conflict = error(ErrorCode.WRITE_CONFLICT, table="t")
    assert isinstance(conflict, WriteConflictError)
    assert conflict.retryable


def test_service_body_shape() -> None:
    body = error(ErrorCode.TABLE_NOT_FOUND, table="silver.x").to_dict()
    assert body == {
        "error": {
            "code": "LH-TBL-007",
            "name": "TABLE_NOT_FOUND",
            "message": "Table silver.x does not exist in the catalog.",
            "param": {"table": "silver.x"},
        }
    }
