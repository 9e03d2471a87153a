"""Table specs and the only writers (see spec.py and writer.py)."""

from lakehouse.tables.spec import Phi, TableSpec, column
from lakehouse.tables.writer import EnsureReport, WriteReport, append, ensure_table, upsert

__all__ = [
    "EnsureReport",
    "Phi",
    "TableSpec",
    "WriteReport",
    "append",
    "column",
    "ensure_table",
    "upsert",
]
