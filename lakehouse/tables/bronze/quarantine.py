"""``bronze.quarantine``: every record that could not be landed, with its raw bytes and code."""

from __future__ import annotations

from pyspark.sql.types import BinaryType, StringType

from lakehouse.tables.bronze.lineage import lineage_columns
from lakehouse.tables.spec import Phi, TableSpec, column

QUARANTINE = TableSpec(
    name="bronze.quarantine",
    comment="Records of every source that could not be landed: raw bytes, the catalogued "
    "error code (LH-ING-...) and a detail without patient data. Keyed by file content, path "
    "and record index, so a replayed run writes nothing twice.",
    columns=(
        *lineage_columns(),
        column(
            "raw_bytes",
            BinaryType(),
            "The record's bytes exactly as delivered (a message, a line, a whole file).",
            phi=Phi.RAW,
        ),
        column("error_code", StringType(), "Catalogued error code, LH-ING-nnn.", nullable=False),
        column("error_name", StringType(), "Name of the error code, e.g. HL7_TRUNCATED."),
        column("detail", StringType(), "Catalogued message: names files and counts, no values."),
    ),
    keys=("file_sha256", "file_path", "record_index"),
    cluster_by=("source_system", "ingest_date"),
)
