"""``bronze.notes_documents``: free-text clinical notes, one row per file."""

from __future__ import annotations

from pyspark.sql.types import StringType

from lakehouse.tables.bronze.lineage import BRONZE_CLUSTERING, RECORD_KEYS, lineage_columns
from lakehouse.tables.spec import Phi, TableSpec, column

NOTES_DOCUMENTS = TableSpec(
    name="bronze.notes_documents",
    comment="One row per free-text note file, decoded from UTF-8 or GB18030.",
    columns=(
        *lineage_columns(),
        column("encoding", StringType(), "Character set the bytes were decoded with."),
        column("text", StringType(), "The note's text.", phi=Phi.RAW),
    ),
    keys=RECORD_KEYS,
    cluster_by=BRONZE_CLUSTERING,
)
