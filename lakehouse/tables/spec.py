"""Tables as data: a :class:`TableSpec` says everything about a Delta table.

Name, schema (each column with a comment, a PHI tag where it holds protected health
information, and the WS 445 data-element code where one exists), merge keys, a sequence
column for choosing the newest version of a key, partitioning or clustering, table
properties (those it derives: change data feed, append-only, and which columns carry
Delta statistics) and a comment. :func:`lakehouse.tables.writer.ensure_table` and
:func:`~lakehouse.tables.writer.upsert` are the only writers; the data dictionary in
``docs/data-dictionary.md`` is rendered from the specs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pyspark.sql.types import (
    DataType,
    DateType,
    NumericType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from lakehouse.errors import ErrorCode, error

#: ``deid``: de-identified views (and their specs) for analysts; ``governance``: restricted
#: tables of the governance code itself (per-person de-identification secrets), read by no role.
LAYERS = (
    "landing", "bronze", "silver", "gold", "ops", "dq", "audit", "vocab", "features",
    "deid", "governance",
)  # fmt: skip
_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_PLAIN_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The Delta table property naming the columns whose min/max/null counts each data file's
#: log entry carries (every other column gets none).
STATS_COLUMNS_PROPERTY = "delta.dataSkippingStatsColumns"
#: How many leaf columns, from the first, Delta keeps statistics on when a table names none
#: (``delta.dataSkippingNumIndexedCols``' default).
DELTA_INDEXED_LEAVES = 32
#: Types Delta keeps min/max of (numbers, decimals included), the only ones
#: ``delta.dataSkippingStatsColumns`` may name (it refuses booleans, binary, maps and
#: arrays; a struct stands for its fields).
_STATS_TYPES = (NumericType, StringType, DateType, TimestampType, TimestampNTZType, StructType)


class Phi(StrEnum):
    """What kind of protected health information a column holds (drives de-identification)."""

    NAME = "name"  # person names
    IDENTIFIER = "identifier"  # 身份证号, MRN, visit numbers, insurance numbers
    CONTACT = "contact"  # phone, e-mail
    ADDRESS = "address"  # street address, fine-grained location
    DATE = "date"  # dates tied to a person (birth, admission): shifted per person
    FREE_TEXT = "free_text"  # notes and narrative that may contain any of the above
    QUASI = "quasi"  # quasi-identifiers (age, sex, postcode) generalized in views
    RAW = "raw"  # raw source payloads (bronze): never exposed to analysts


def column(
    name: str,
    data_type: DataType,
    comment: str,
    *,
    nullable: bool = True,
    phi: Phi | None = None,
    ws445: str | None = None,
) -> StructField:
    """A documented column: the comment, PHI tag and WS 445 code live in its metadata."""
    meta: dict[str, Any] = {"comment": comment}
    if phi is not None:
        meta["phi"] = phi.value
    if ws445 is not None:
        meta["ws445"] = ws445
    return StructField(name, data_type, nullable, meta)


@dataclass(frozen=True)
class TableSpec:
    """Everything about one Delta table. Construction validates it (``LH-TBL-001``)."""

    name: str
    columns: tuple[StructField, ...]
    comment: str
    keys: tuple[str, ...] = ()
    sequence_by: str | None = None
    partition_by: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    change_data_feed: bool = True
    append_only: bool = False
    #: Column identifying the patient a row belongs to (row policies, de-identified views).
    person_key: str | None = None
    #: Columns that record the writing run (run id, processed time), not the content: a
    #: MERGE does not rewrite a row whose other columns are unchanged (idempotent reruns).
    volatile: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        def bad(reason: str) -> None:
            raise error(ErrorCode.TABLE_SPEC_INVALID, table=self.name, reason=reason)

        if not _NAME.match(self.name):
            bad("name must be <layer>.<table> in lower snake case")
        if self.layer not in LAYERS:
            bad(f"layer must be one of {', '.join(LAYERS)}")
        if not self.comment.strip():
            bad("the table needs a comment")
        names = [c.name for c in self.columns]
        if not names:
            bad("the table needs columns")
        if len(set(names)) != len(names):
            bad("duplicate column names")
        for c in self.columns:
            if not str(c.metadata.get("comment", "")).strip():
                bad(f"column {c.name} needs a comment")
            if "phi" in c.metadata and c.metadata["phi"] not in {p.value for p in Phi}:
                bad(f"column {c.name} has an unknown PHI tag")
        for group, cols in (("keys", self.keys), ("partition_by", self.partition_by)):
            for col in cols:
                if col not in names:
                    bad(f"{group} column {col} is not in the schema")
        for col in self.volatile:
            if col not in names or col in self.keys:
                bad(f"volatile column {col} must be a non-key column of the schema")
        for col in self.cluster_by:
            if col not in names:
                bad(f"cluster_by column {col} is not in the schema")
        if self.sequence_by and self.sequence_by not in names:
            bad(f"sequence_by column {self.sequence_by} is not in the schema")
        if self.person_key and self.person_key not in names:
            bad(f"person_key column {self.person_key} is not in the schema")
        if self.partition_by and self.cluster_by:
            bad("Delta tables are either partitioned or clustered, not both")
        if self.append_only and self.keys:
            bad("append-only tables have no merge keys")
        nullable_keys = [c.name for c in self.columns if c.name in self.keys and c.nullable]
        if nullable_keys:
            bad(f"key columns must be non-nullable: {', '.join(nullable_keys)}")
        for col in self.unindexed_columns:
            if col in (*self.keys, *self.cluster_by, *self.partition_by):
                bad(
                    f"column {col} is a raw payload (no statistics) and cannot be a key, "
                    "clustering or partition column"
                )

    @property
    def schema_name(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def layer(self) -> str:
        return self.schema_name

    @property
    def schema(self) -> StructType:
        return StructType(list(self.columns))

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def phi_columns(self) -> dict[str, Phi]:
        """Columns holding PHI, with their tag (for policies and de-identified views)."""
        return {c.name: Phi(c.metadata["phi"]) for c in self.columns if "phi" in c.metadata}

    @property
    def unindexed_columns(self) -> tuple[str, ...]:
        """Columns Delta keeps no statistics on: the raw payloads (``Phi.RAW``).

        Nothing filters on a raw message, document or line, so the min/max Delta would
        compute over every written row of them is write CPU for nothing (and would put the
        first 32 characters of each file's smallest and largest payload into ``_delta_log``).
        Keys, clustering and partition columns are never among them (validation refuses it).
        """
        return tuple(c.name for c in self.columns if c.metadata.get("phi") == Phi.RAW.value)

    def stats_columns(self, *, without: Iterable[str] = ()) -> tuple[str, ...]:
        """The columns Delta keeps statistics on, for ``delta.dataSkippingStatsColumns``.

        Those Delta would keep by default (the first 32 leaf columns) plus the keys and
        clustering columns wherever they are (MERGE prunes files on the keys; clustering
        needs statistics), less :attr:`unindexed_columns` and ``without`` (e.g. encrypted
        columns), less what the property cannot name: partition columns (their values are
        in the file's path) and columns of a type without min/max (booleans, binary, maps,
        arrays: by default they get a null count only), which Delta refuses there.
        """
        dropped = {*self.unindexed_columns, *without, *self.partition_by}
        always = {*self.keys, *self.cluster_by}
        kept, leaves = [], 0
        for c in self.columns:
            leaves += _leaf_count(c.dataType)
            if c.name in dropped or not isinstance(c.dataType, _STATS_TYPES):
                continue
            if leaves <= DELTA_INDEXED_LEAVES or c.name in always:
                kept.append(c.name)
        return tuple(kept)

    @property
    def table_properties(self) -> dict[str, str]:
        """Delta table properties the spec requires (its own plus derived ones)."""
        props = {"delta.enableChangeDataFeed": str(self.change_data_feed).lower()}
        if self.append_only:
            props["delta.appendOnly"] = "true"
        if self.unindexed_columns:
            props[STATS_COLUMNS_PROPERTY] = stats_column_list(self.stats_columns())
        props.update(self.properties)
        return props

    def column(self, name: str) -> StructField:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _leaf_count(data_type: DataType) -> int:
    """Leaf columns of a type as Delta counts them for its default statistics."""
    if isinstance(data_type, StructType):
        return sum(_leaf_count(f.dataType) for f in data_type.fields)
    return 1


def stats_column_list(names: Iterable[str]) -> str:
    """``names`` as the value of ``delta.dataSkippingStatsColumns``: comma-separated, each
    name that is not a plain identifier quoted with backticks (Delta parses the list)."""
    return ",".join(
        n if _PLAIN_COLUMN.match(n) else "`" + n.replace("`", "``") + "`" for n in names
    )


def quote_name(name: str) -> str:
    """A qualified table name as SQL, each part quoted: OMOP names such as ``gold.location``
    are keywords of Delta's SQL grammar (``DESCRIBE DETAIL gold.location`` misparses)."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))
