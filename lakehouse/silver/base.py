"""The contract between bronze-to-silver transforms and the silver job.

A transform is a function from the rows of one bronze table (its spec's columns, any
number of rows, possibly several versions of one record) to a :class:`SilverOutput`: rows
for one or more silver tables, and the bronze records it could not turn into rows.

What a transform sets, per silver row:
  - ``institution_code``, ``source_system`` and the table's record id (the merge keys);
  - the patient (``patient_id``; ``patient_key`` = ``institution_code || '|' || patient_id``,
    use :func:`patient_key`), ``encounter_id`` where known;
  - the content columns, codes as sent (``*source_code``, ``*source_vocabulary`` with the
    terminology service's vocabulary ids, ``*source_name``), values and units as sent;
  - lineage: ``bronze_file_sha256``, ``bronze_record_index``, ``source_updated_at`` (the
    version order of a key: HL7 MSH-7, HIS updated_at, ...) and ``is_deleted``.
What the silver job sets, never the transform: ``bronze_table``, ``silver_run_id``,
``processed_at``, the standard concept columns (``*concept_id``, ``*standard_code``,
``*standard_vocabulary``, ``*standard_name``, ``*map_status``) and the lab unit
normalization (``value_std``, ``unit_std``, ``unit_status``). Columns a transform leaves out
are null (``lakehouse.tables.writer.conform``); a column not in the spec is an error.

Transforms are Spark-native (column functions, ``from_json``, ``split``/``explode``); a
pandas UDF over Arrow batches only where no Spark function does the job, and then said so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

#: Columns of a reject: which bronze record could not become silver rows, and why.
REJECT_SCHEMA = StructType(
    [
        StructField("institution_code", StringType()),
        StructField("source_system", StringType()),
        StructField("bronze_file_sha256", StringType()),
        StructField("bronze_record_index", LongType()),
        StructField("error_code", StringType()),
        StructField("error_name", StringType()),
        StructField("detail", StringType()),
    ]
)


@dataclass
class SilverOutput:
    """What a transform made of a batch of bronze rows."""

    rows: dict[str, DataFrame] = field(default_factory=dict)
    rejects: DataFrame | None = None

    def add(self, table: str, df: DataFrame) -> None:
        """Rows for ``table`` (a silver table name); several adds to one table union."""
        if table in self.rows:
            self.rows[table] = self.rows[table].unionByName(df, allowMissingColumns=True)
        else:
            self.rows[table] = df

    def reject(self, df: DataFrame) -> None:
        """Bronze records that could not be turned into rows (columns of REJECT_SCHEMA)."""
        df = df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in REJECT_SCHEMA])
        self.rejects = df if self.rejects is None else self.rejects.unionByName(df)


Transform = Callable[[DataFrame], SilverOutput]


def patient_key(institution: Column, patient_id: Column) -> Column:
    """``'<institution_code>|<patient_id>'``; null when the patient id is unknown."""
    return F.when(
        patient_id.isNotNull() & (F.trim(patient_id) != ""),
        F.concat_ws("|", institution, F.trim(patient_id)),
    )


def blank_to_null(c: Column) -> Column:
    """Trimmed text, null when empty."""
    t = F.trim(c)
    return F.when(t != "", t)
