"""Python parsers over whole Arrow batches of files (``mapInArrow``), for XML, CSV and DICOM.

Why not a Python UDF: these formats need a real parser (defusedxml, csv, pydicom) that
Spark's functions cannot express, and one file can yield many records. ``mapInArrow`` hands
the worker a batch of files at a time and takes back a batch of records, so there is no
per-row call overhead, a file may give any number of rows, and it is not affected by the
pyspark 4.2.0 Arrow UDF hang (SPARK-58241, docs/dependency-notes.md). A parser never raises:
every file ends as records or as a quarantined record with a code; an unexpected exception
becomes the format's ``fallback`` code with the exception's class name (never its message,
which may quote data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import BinaryType, LongType, MapType, StringType, StructField, StructType

from lakehouse.errors import ErrorCode
from lakehouse.sources.records import ERROR_COLUMNS, LINEAGE

#: One record from a parser: record_index, raw_bytes, optional error_* and format fields.
Record = dict[str, Any]
Parser = Callable[[bytes, str], Iterable[Record]]


def record_schema(fields: StructType) -> StructType:
    """Lineage, record index, raw bytes, error columns, then the format's own fields."""
    base = [StructField(c, StringType()) for c in LINEAGE]
    base += [StructField("record_index", LongType()), StructField("raw_bytes", BinaryType())]
    base += [StructField(c, StringType()) for c in ERROR_COLUMNS]
    return StructType(base + list(fields.fields))


def failed(code: ErrorCode, raw: bytes, index: int = 0, **params: str | None) -> Record:
    """A quarantined record (params: reason, found, expected)."""
    rec: Record = {"record_index": index, "raw_bytes": raw, "error_name": code.name}
    for key in ("reason", "found", "expected"):
        rec[f"error_{key}"] = params.get(key)
    return rec


def map_files(
    files: DataFrame, parse: Parser, fields: StructType, *, fallback: ErrorCode
) -> DataFrame:
    """Run ``parse(content, file_path)`` over every file, in Arrow batches, on the executors."""
    schema = record_schema(fields)
    arrow_schema = to_arrow_schema(schema)
    maps = {f.name for f in schema.fields if isinstance(f.dataType, MapType)}
    names = schema.names

    def one_file(row: dict[str, Any]) -> Iterator[Record]:
        content = row["content"] or b""
        try:
            records = list(parse(content, row["file_path"]))
        except Exception as exc:  # a parser bug must not stop the run: quarantine the file
            records = [failed(fallback, content, reason=type(exc).__name__)]
        for rec in records:
            out = {c: row[c] for c in LINEAGE}
            out.update(rec)
            for m in maps:
                if isinstance(out.get(m), dict):
                    out[m] = list(out[m].items())
            yield out

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = [r for row in batch.to_pylist() for r in one_file(row)]
            columns = {n: [r.get(n) for r in rows] for n in names}
            yield pa.RecordBatch.from_pydict(columns, schema=arrow_schema)

    return files.select(*LINEAGE, "content").mapInArrow(run, schema)
