"""``bronze.csv_rows``: rows of CSV exports (GB18030 or UTF-8, header row first)."""

from __future__ import annotations

from pyspark.sql.types import MapType, StringType

from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS, lineage_columns
from lakehouse.tables.spec import Phi, TableSpec, column

CSV_ROWS = TableSpec(
    name="bronze.csv_rows",
    comment="One row per data row of a CSV export; values keyed by the file's header names. "
    "record_index is the 0-based data row number (the header is not a record).",
    columns=(
        *lineage_columns(),
        column("encoding", StringType(), "Character set the bytes were decoded with."),
        column(
            "values",
            MapType(StringType(), StringType()),
            "Header name -> value of the row, as written.",
            phi=Phi.RAW,
        ),
        column("raw_line", StringType(), "The row as written (decoded).", phi=Phi.RAW),
    ),
    keys=RECORD_KEYS,
    cluster_by=BRONZE_CLUSTERING,
)
