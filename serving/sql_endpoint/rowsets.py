"""HiveServer2 result sets from Spark rows: column descriptions and columnar row sets.

A statement's result is held as a :class:`Result` (Spark schema + at most
``sql_endpoint.max_rows`` rows); :func:`table_schema` describes it for
``GetResultSetMetadata`` and :func:`row_set` turns one page of it into the columnar
``TRowSet`` (protocol V6 and later) of ``FetchResults``: one typed column per field with a
null bitmap. Spark types map to the HiveServer2 type the Hive JDBC driver expects; decimals,
dates and timestamps travel as strings (as HiveServer2 sends them), nested values as JSON.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Row
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    ByteType,
    CharType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
    VarcharType,
)
from TCLIService import ttypes as tt


@dataclass
class Result:
    """A statement's or catalog call's rows, held until the operation is closed."""

    schema: StructType
    rows: list[tuple[Any, ...]]
    #: The result reached ``sql_endpoint.max_rows``: more rows may have matched.
    capped: bool = False
    #: Lines the operation log shows (``FetchResults`` with fetchType 1; beeline prints them).
    log: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Kind:
    """How one Spark type travels: HiveServer2 type, TColumn field, JDBC type, converter."""

    ttype: int
    slot: str
    jdbc: int
    empty: Any
    convert: Callable[[Any], Any]


def _same(v: Any) -> Any:
    return v


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def _timestamp(v: dt.datetime) -> str:
    return v.isoformat(sep=" ")


def _json(v: Any) -> str:
    return json.dumps(_plain(v), ensure_ascii=False, default=str, sort_keys=False)


def _plain(v: Any) -> Any:
    if isinstance(v, Row):
        return {k: _plain(x) for k, x in v.asDict().items()}
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dt.date | dt.datetime | decimal.Decimal):
        return str(v)
    return v


_STRING = _Kind(tt.TTypeId.STRING_TYPE, "stringVal", 12, "", _text)
_COMPLEX = _Kind(tt.TTypeId.STRING_TYPE, "stringVal", 12, "", _json)
_BY_TYPE: dict[type[DataType], _Kind] = {
    BooleanType: _Kind(tt.TTypeId.BOOLEAN_TYPE, "boolVal", 16, False, bool),
    ByteType: _Kind(tt.TTypeId.TINYINT_TYPE, "byteVal", -6, 0, int),
    ShortType: _Kind(tt.TTypeId.SMALLINT_TYPE, "i16Val", 5, 0, int),
    IntegerType: _Kind(tt.TTypeId.INT_TYPE, "i32Val", 4, 0, int),
    LongType: _Kind(tt.TTypeId.BIGINT_TYPE, "i64Val", -5, 0, int),
    FloatType: _Kind(tt.TTypeId.FLOAT_TYPE, "doubleVal", 6, 0.0, float),
    DoubleType: _Kind(tt.TTypeId.DOUBLE_TYPE, "doubleVal", 8, 0.0, float),
    DecimalType: _Kind(tt.TTypeId.DECIMAL_TYPE, "stringVal", 3, "", _text),
    StringType: _STRING,
    VarcharType: _STRING,
    CharType: _STRING,
    DateType: _Kind(tt.TTypeId.DATE_TYPE, "stringVal", 91, "", _text),
    TimestampType: _Kind(tt.TTypeId.TIMESTAMP_TYPE, "stringVal", 93, "", _timestamp),
    TimestampNTZType: _Kind(tt.TTypeId.TIMESTAMP_TYPE, "stringVal", 93, "", _timestamp),
    BinaryType: _Kind(tt.TTypeId.BINARY_TYPE, "binaryVal", -2, b"", bytes),
}
_COLUMN_CLASS = {
    "boolVal": tt.TBoolColumn,
    "byteVal": tt.TByteColumn,
    "i16Val": tt.TI16Column,
    "i32Val": tt.TI32Column,
    "i64Val": tt.TI64Column,
    "doubleVal": tt.TDoubleColumn,
    "stringVal": tt.TStringColumn,
    "binaryVal": tt.TBinaryColumn,
}


def kind(data_type: DataType) -> _Kind:
    """How values of ``data_type`` travel (arrays, maps, structs: JSON strings)."""
    return _BY_TYPE.get(type(data_type), _COMPLEX)


def type_name(data_type: DataType) -> str:
    """The HiveServer2 type name a catalog call reports (``DECIMAL``, ``STRING``...)."""
    return str(tt.TTypeId._VALUES_TO_NAMES[kind(data_type).ttype]).removesuffix("_TYPE")


def jdbc_type(data_type: DataType) -> int:
    """The ``java.sql.Types`` code of ``data_type`` (GetColumns' DATA_TYPE)."""
    return kind(data_type).jdbc


def _type_desc(data_type: DataType) -> Any:
    qualifiers = None
    if isinstance(data_type, DecimalType):
        qualifiers = tt.TTypeQualifiers(
            qualifiers={
                "precision": tt.TTypeQualifierValue(i32Value=data_type.precision),
                "scale": tt.TTypeQualifierValue(i32Value=data_type.scale),
            }
        )
    entry = tt.TPrimitiveTypeEntry(type=kind(data_type).ttype, typeQualifiers=qualifiers)
    return tt.TTypeDesc(types=[tt.TTypeEntry(primitiveEntry=entry)])


def table_schema(schema: StructType) -> Any:
    """``TTableSchema`` of a result: name, type and 1-based position of every column."""
    return tt.TTableSchema(
        columns=[
            tt.TColumnDesc(
                columnName=f.name,
                typeDesc=_type_desc(f.dataType),
                position=i,
                comment=(f.metadata or {}).get("comment"),
            )
            for i, f in enumerate(schema.fields, start=1)
        ]
    )


def _column(f: StructField, values: Sequence[Any]) -> Any:
    k = kind(f.dataType)
    nulls = bytearray((len(values) + 7) // 8)
    out: list[Any] = []
    for i, v in enumerate(values):
        if v is None:
            nulls[i // 8] |= 1 << (i % 8)
            out.append(k.empty)
        else:
            out.append(k.convert(v))
    return tt.TColumn(**{k.slot: _COLUMN_CLASS[k.slot](values=out, nulls=bytes(nulls))})


def row_set(schema: StructType, rows: Sequence[tuple[Any, ...]], offset: int) -> Any:
    """The columnar ``TRowSet`` of ``rows`` (one page), starting at row ``offset``."""
    columns = [_column(f, [r[i] for r in rows]) for i, f in enumerate(schema.fields)]
    return tt.TRowSet(startRowOffset=offset, rows=[], columns=columns)


def log_set(lines: Sequence[str]) -> Any:
    """The operation log as a one-column row set (what ``FetchResults`` fetchType 1 reads)."""
    return tt.TRowSet(
        startRowOffset=0,
        rows=[],
        columns=[
            tt.TColumn(
                stringVal=tt.TStringColumn(values=list(lines), nulls=bytes((len(lines) + 7) // 8))
            )
        ],
    )
