"""CSV exports (GB18030 or UTF-8, header row first) -> one record per data row.

Decoding: a UTF-8 BOM or valid UTF-8 means UTF-8, otherwise GB18030 (the hospital export
default) if it decodes strictly; otherwise the whole file is quarantined (LH-ING-011). A row
whose field count differs from the header's is quarantined (LH-ING-015) with its exact
bytes; blank lines are not records. Quoted fields may span lines (Python's csv module).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from pyspark.sql import DataFrame
from pyspark.sql.types import MapType, StringType, StructField, StructType

from lakehouse.errors import ErrorCode
from lakehouse.sources.batches import Record, failed, map_files

ROW_COLUMNS = ("encoding", "values", "raw_line")
_FIELDS = StructType(
    [
        StructField("encoding", StringType()),
        StructField("values", MapType(StringType(), StringType())),
        StructField("raw_line", StringType()),
    ]
)


def _decode(content: bytes) -> tuple[str, str] | None:
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    for name, codec in (("UTF-8", "utf-8"), ("GB18030", "gb18030")):
        try:
            return content.decode(codec), name
        except UnicodeDecodeError:
            continue
    return None


def parse_csv(content: bytes, path: str) -> Iterator[Record]:
    """One CSV file -> one record per data row (or quarantines)."""
    decoded = _decode(content)
    if decoded is None:
        yield failed(ErrorCode.ENCODING_UNDETECTED, content)
        return
    text, encoding = decoded
    codec = "utf-8" if encoding == "UTF-8" else "gb18030"
    lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    index, last_line = 0, 0
    for row in reader:
        raw = "".join(lines[last_line : reader.line_num])
        last_line = reader.line_num
        if not row:
            continue
        if header is None:
            header = row
            continue
        if len(row) != len(header):
            yield failed(
                ErrorCode.CSV_RAGGED_ROW,
                raw.encode(codec),
                index,
                found=str(len(row)),
                expected=str(len(header)),
            )
        else:
            yield {
                "record_index": index,
                "raw_bytes": raw.encode(codec),
                "encoding": encoding,
                "values": dict(zip(header, row, strict=True)),
                "raw_line": raw.rstrip("\r\n"),
            }
        index += 1


def parse_rows(files: DataFrame) -> DataFrame:
    """Files -> records: one per CSV data row, or the error that quarantines it."""
    return map_files(files, parse_csv, _FIELDS, fallback=ErrorCode.ENCODING_UNDETECTED)
