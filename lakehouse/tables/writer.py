"""The only writers of Delta tables: :func:`ensure_table` (:func:`ensure_tables` for many),
:func:`upsert` and :func:`append`.

``ensure_table`` creates a table from its :class:`~lakehouse.tables.spec.TableSpec` or
evolves it: new columns are added with their metadata, safe type widenings are applied with
Delta type widening, comments and table properties follow the spec. Anything else (a
narrowing, a new partitioning) raises ``LH-TBL-002`` instead of rewriting data.

``upsert`` MERGEs a DataFrame on the spec's keys. It is idempotent: rows equal to what is
stored are not rewritten, so the same input twice commits no changes; with ``sequence_by``
an older version of a row never overwrites a newer one (late or duplicate deliveries).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from delta import exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DataType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StructType,
)

from lakehouse.errors import ErrorCode, error
from lakehouse.governance import encryption
from lakehouse.tables.spec import TableSpec, quote_name
from lakehouse.tables.versions import log_version, table_layout, tagged_commit

logger = logging.getLogger(__name__)

T = TypeVar("T")
PHI_PROPERTY = "lakehouse.phi_columns"
MAX_ATTEMPTS = 5

#: Delta's optimistic-concurrency failures: the commit lost a race and may be retried.
RETRYABLE = (
    delta_errors.DeltaConcurrentModificationException,
    delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException,
    delta_errors.ProtocolChangedException,
    delta_errors.ConcurrentAppendException,
    delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentDeleteDeleteException,
    delta_errors.ConcurrentTransactionException,
)

_INTEGRAL_RANK: dict[type[DataType], int] = {ByteType: 1, ShortType: 2, IntegerType: 3, LongType: 4}


@dataclass
class EnsureReport:
    """What :func:`ensure_table` did."""

    table: str
    created: bool = False
    added_columns: list[str] = field(default_factory=list)
    widened_columns: list[str] = field(default_factory=list)
    recommented_columns: list[str] = field(default_factory=list)
    properties_set: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.added_columns
            or self.widened_columns
            or self.recommented_columns
            or self.properties_set
        )


@dataclass(frozen=True)
class WriteReport:
    """Row counts of one commit, from Delta's operation metrics (no extra Spark action)."""

    table: str
    version: int
    source_rows: int
    inserted: int
    updated: int
    deleted: int = 0


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_safe_widening(old: DataType, new: DataType) -> bool:
    """Type changes Delta type widening applies in place (no rewrite, readers unaffected)."""
    if type(old) in _INTEGRAL_RANK and type(new) in _INTEGRAL_RANK:
        return _INTEGRAL_RANK[type(new)] > _INTEGRAL_RANK[type(old)]
    if type(old) in _INTEGRAL_RANK and isinstance(new, DoubleType):
        return _INTEGRAL_RANK[type(old)] <= 3
    if isinstance(old, FloatType) and isinstance(new, DoubleType):
        return True
    if isinstance(old, DecimalType) and isinstance(new, DecimalType):
        return new.scale >= old.scale and (new.precision - new.scale) >= (old.precision - old.scale)
    return False


def ensure_table(spark: SparkSession, spec: TableSpec) -> EnsureReport:
    """Create ``spec.name`` or bring it in line with its spec. Safe to call on every run."""
    report = EnsureReport(spec.name)
    if not spark.catalog.databaseExists(spec.schema_name):
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {_quote(spec.schema_name)}")
    props = spec.table_properties
    props.update(encryption.table_properties(spark, spec))  # empty unless settings choose
    props[PHI_PROPERTY] = json.dumps(
        {k: v.value for k, v in sorted(spec.phi_columns.items())}, ensure_ascii=False
    )
    if not spark.catalog.tableExists(spec.name):
        builder = (
            DeltaTable.createIfNotExists(spark)
            .tableName(spec.name)
            .addColumns(spec.schema)
            .comment(spec.comment)
        )
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        if spec.cluster_by:
            builder = builder.clusterBy(*spec.cluster_by)
        for key, value in props.items():
            builder = builder.property(key, value)
        builder.execute()
        report.created = True
        logger.info("created table %s (%d columns)", spec.name, len(spec.columns))
        return report

    _evolve(spark, spec, props, report)
    if report.changed:
        logger.info(
            "evolved table %s: added=%s widened=%s comments=%s properties=%s",
            spec.name,
            report.added_columns,
            report.widened_columns,
            report.recommented_columns,
            report.properties_set,
        )
    return report


def ensure_tables(
    spark: SparkSession, specs: list[TableSpec], *, parallelism: int = 4
) -> list[EnsureReport]:
    """:func:`ensure_table` for many specs at once, reports in the order of ``specs``.

    Creating or checking a table is mostly driver round trips (catalog calls, the Delta log)
    rather than cluster work, so a few threads on one session overlap them; schemas are
    created first, one at a time, so no two threads race to create the same one.
    """
    for schema in dict.fromkeys(s.schema_name for s in specs):
        if not spark.catalog.databaseExists(schema):
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
    if parallelism <= 1 or len(specs) <= 1:
        return [ensure_table(spark, spec) for spec in specs]
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="ensure") as pool:
        return list(pool.map(lambda spec: ensure_table(spark, spec), specs))


def _evolve(
    spark: SparkSession, spec: TableSpec, props: dict[str, str], report: EnsureReport
) -> None:
    layout = table_layout(spark, spec.name)
    stored_partitions = list(layout.partition_columns)
    stored_props = layout.properties
    if stored_partitions != list(spec.partition_by):
        raise error(
            ErrorCode.TABLE_SCHEMA_INCOMPATIBLE,
            table=spec.name,
            column=",".join(spec.partition_by) or "(none)",
            found=f"partitioned by {stored_partitions}",
            expected=f"partitioned by {list(spec.partition_by)}",
        )
    stored = {f.name: f for f in spark.table(spec.name).schema.fields}

    # 1. Type widenings (before adding columns, so one failure changes nothing).
    widen = []
    for want in spec.columns:
        have = stored.get(want.name)
        if have is None or have.dataType == want.dataType:
            continue
        if not is_safe_widening(have.dataType, want.dataType):
            raise error(
                ErrorCode.TABLE_SCHEMA_INCOMPATIBLE,
                table=spec.name,
                column=want.name,
                found=have.dataType.simpleString(),
                expected=want.dataType.simpleString(),
            )
        widen.append(want)
    if widen and stored_props.get("delta.enableTypeWidening") != "true":
        spark.sql(
            f"ALTER TABLE {quote_name(spec.name)} "
            "SET TBLPROPERTIES ('delta.enableTypeWidening' = 'true')"
        )
    for want in widen:
        spark.sql(
            f"ALTER TABLE {quote_name(spec.name)} ALTER COLUMN {_quote(want.name)} "
            f"TYPE {want.dataType.simpleString()}"
        )
        report.widened_columns.append(want.name)

    # 2. New columns, with their metadata (comment, PHI tag, WS 445 code), by a
    #    schema-merging empty append: ALTER TABLE ADD COLUMNS would drop the metadata.
    new = [c for c in spec.columns if c.name not in stored]
    if new:
        current = spark.table(spec.name).schema
        merged = current.fields + new
        (
            spark.createDataFrame([], StructType(merged))
            .write.format("delta")
            .mode("append")
            .option("mergeSchema", "true")
            .saveAsTable(spec.name)
        )
        report.added_columns.extend(c.name for c in new)

    # 3. Comments of existing columns; PHI tags of existing columns are kept current in the
    #    lakehouse.phi_columns property (Delta cannot rewrite a column's metadata in place).
    for want in spec.columns:
        have = stored.get(want.name)
        if have is None:
            continue
        if have.metadata.get("comment") != want.metadata.get("comment"):
            spark.sql(
                f"ALTER TABLE {quote_name(spec.name)} ALTER COLUMN {_quote(want.name)} "
                f"COMMENT {_sql_str(str(want.metadata['comment']))}"
            )
            report.recommented_columns.append(want.name)
        if have.metadata.get("phi") != want.metadata.get("phi"):
            logger.warning(
                "table %s column %s: PHI tag in column metadata differs from the spec; "
                "the %s table property carries the current tag",
                spec.name,
                want.name,
                PHI_PROPERTY,
            )

    # 4. Table properties and comment.
    changed = {k: v for k, v in props.items() if stored_props.get(k) != v}
    if changed:
        assignments = ", ".join(f"{_sql_str(k)} = {_sql_str(v)}" for k, v in changed.items())
        spark.sql(f"ALTER TABLE {quote_name(spec.name)} SET TBLPROPERTIES ({assignments})")
        report.properties_set.extend(sorted(changed))
    if layout.description != spec.comment:
        spark.sql(f"COMMENT ON TABLE {spec.name} IS {_sql_str(spec.comment)}")

    # 5. Liquid clustering can change in place (files are reclustered by OPTIMIZE).
    if list(layout.clustering_columns) != list(spec.cluster_by):
        target = f"({', '.join(_quote(c) for c in spec.cluster_by)})" if spec.cluster_by else "NONE"
        spark.sql(f"ALTER TABLE {quote_name(spec.name)} CLUSTER BY {target}")
        report.properties_set.append("clustering")


def conform(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Select the spec's columns in order, cast to the spec's types; refuse unknown columns."""
    have = set(df.columns)
    extra = sorted(have - set(spec.column_names))
    if extra:
        raise error(
            ErrorCode.INPUT_SCHEMA_MISMATCH,
            table=spec.name,
            reason="columns not in the spec",
            columns=", ".join(extra),
        )
    missing_required = [c.name for c in spec.columns if c.name not in have and not c.nullable]
    if missing_required:
        raise error(
            ErrorCode.INPUT_SCHEMA_MISMATCH,
            table=spec.name,
            reason="required columns missing",
            columns=", ".join(missing_required),
        )
    cols: list[Column] = []
    for c in spec.columns:
        if c.name in have:
            cols.append(F.col(c.name).cast(c.dataType).alias(c.name))
        else:
            cols.append(F.lit(None).cast(c.dataType).alias(c.name))
    return df.select(*cols)


def _comparable(spec: TableSpec, name: str, alias: str = "") -> str:
    """SQL for a column in a form that supports equality and hashing.

    Map columns do not (Spark refuses to compare or hash maps): their entries, sorted, do.
    """
    ref = f"{alias}.{_quote(name)}" if alias else _quote(name)
    if isinstance(spec.column(name).dataType, MapType):
        return f"array_sort(map_entries({ref}))"
    return ref


def _content_hash(spec: TableSpec) -> Column:
    return F.xxhash64(*[F.expr(_comparable(spec, c)) for c in spec.column_names])


def latest_per_key(df: DataFrame, spec: TableSpec) -> DataFrame:
    """One row per key: the highest ``sequence_by`` value (if any), ties broken by a hash of
    the row's content without the volatile columns (the run that derived it) and without
    ``sequence_by`` (equal among tied rows, and for some sources the landing time). So the same
    input picks the same row in every run, on one machine or a cluster, whatever the
    partitioning.
    """
    tie = [
        F.expr(_comparable(spec, c))
        for c in spec.column_names
        if c not in spec.volatile and c != spec.sequence_by
    ]
    order = [F.xxhash64(*tie).desc()]
    if spec.sequence_by:
        order.insert(0, F.col(spec.sequence_by).desc_nulls_last())
    w = Window.partitionBy(*spec.keys).orderBy(*order)
    return df.withColumn("__rank", F.row_number().over(w)).where("__rank = 1").drop("__rank")


def _check_unique(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Exact duplicate rows collapse; rows sharing a key with different content are refused."""
    hashed = df.withColumn("__content", _content_hash(spec))
    per_key = hashed.groupBy(*spec.keys).agg(F.countDistinct("__content").alias("versions"))
    clashes = per_key.where("versions > 1").count()
    if clashes:
        raise error(
            ErrorCode.DUPLICATE_KEYS, table=spec.name, count=clashes, keys=", ".join(spec.keys)
        )
    return hashed.dropDuplicates([*spec.keys]).drop("__content")


def upsert(
    spark: SparkSession,
    spec: TableSpec,
    df: DataFrame,
    *,
    insert_only: bool = False,
    delete_unmatched: bool = False,
    unique_keys: bool = False,
    target_filter: str | None = None,
) -> WriteReport:
    """MERGE ``df`` into ``spec.name`` on its keys (creating/evolving the table first).

    ``insert_only``: keys already stored are left untouched (first landing wins, so
    replayed raw records keep the lineage of the run that landed them) and Delta skips
    rewriting matched files. Within the input, one row per key is kept deterministically.
    ``delete_unmatched``: ``df`` is the whole table; stored rows whose key it lacks are
    deleted (one MERGE: unchanged rows are not rewritten, unlike an overwrite).
    ``unique_keys``: the caller vouches that ``df`` holds at most one row per key, by
    construction or by a check it already runs (one row per listed file, a fresh UUID, a
    per-file count of record indexes). The writer then neither keeps one row per key
    (a window that hashes and shuffles every row, payloads included) nor counts clashing
    keys (an extra Spark job). A caller wrong about it stores duplicate keys: inputs that
    can repeat a key (re-read rows, late deliveries, derived tables) leave it ``False``.
    ``target_filter``: a condition on the stored rows (alias ``t``, e.g. ``t.ingest_date >=
    DATE'2026-11-26'``) that every row able to match ``df`` satisfies, by the caller's
    knowledge. It joins the MERGE condition, so Delta reads only the files whose statistics
    can satisfy it (the MERGE costs the rows it can touch, not the table), and a concurrent
    commit that adds such rows still conflicts with this one. Stored rows outside it are
    treated as absent: a caller wrong about it inserts keys already stored.
    """
    if not spec.keys:
        raise error(ErrorCode.TABLE_SPEC_INVALID, table=spec.name, reason="upsert needs keys")
    if target_filter is not None and delete_unmatched:
        raise error(
            ErrorCode.TABLE_SPEC_INVALID,
            table=spec.name,
            reason="a MERGE that deletes unmatched rows must read the whole table",
        )
    ensure_table(spark, spec)
    before = log_version(spark, spec.name)
    source = conform(df, spec)
    if unique_keys:
        pass  # one row per key already: nothing to choose between, nothing to check
    elif insert_only or spec.sequence_by:
        source = latest_per_key(source, spec)
    else:
        source = _check_unique(source, spec)

    value_cols = [c for c in spec.column_names if c not in spec.keys and c not in spec.volatile]
    on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in spec.keys)
    if target_filter is not None:
        on = f"({target_filter}) AND {on}"
    differs = " OR ".join(
        f"NOT ({_comparable(spec, c, 't')} <=> {_comparable(spec, c, 's')})" for c in value_cols
    )
    update_when = f"({differs})" if value_cols else "false"
    if spec.sequence_by:
        seq = _quote(spec.sequence_by)
        update_when = f"(t.{seq} IS NULL OR s.{seq} >= t.{seq}) AND {update_when}"
    assignments: dict[str, str | Column] = {_quote(c): f"s.{_quote(c)}" for c in spec.column_names}

    def merge() -> None:
        builder = DeltaTable.forName(spark, spec.name).alias("t").merge(source.alias("s"), on)
        if not insert_only:
            builder = builder.whenMatchedUpdate(condition=update_when, set=assignments)
        builder = builder.whenNotMatchedInsert(values=assignments)
        if delete_unmatched:
            builder = builder.whenNotMatchedBySourceDelete()
        builder.execute()

    token = _with_retries(_tagged_merge(spark, merge), spec.name, "merge")
    return _commit_report(spark, spec.name, token, after=before)


def delete_keys(spark: SparkSession, spec: TableSpec, keys: DataFrame) -> WriteReport:
    """Delete the stored rows whose keys are in ``keys`` (one MERGE; absent keys ignored)."""
    if not spec.keys:
        raise error(ErrorCode.TABLE_SPEC_INVALID, table=spec.name, reason="delete needs keys")
    ensure_table(spark, spec)
    before = log_version(spark, spec.name)
    source = keys.select(
        *[F.col(k).cast(spec.column(k).dataType).alias(k) for k in spec.keys]
    ).dropDuplicates(list(spec.keys))
    on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in spec.keys)

    def merge() -> None:
        DeltaTable.forName(spark, spec.name).alias("t").merge(
            source.alias("s"), on
        ).whenMatchedDelete().execute()

    token = _with_retries(_tagged_merge(spark, merge), spec.name, "merge")
    return _commit_report(spark, spec.name, token, after=before)


def fill(
    spark: SparkSession, spec: TableSpec, df: DataFrame, columns: tuple[str, ...]
) -> WriteReport:
    """Set ``columns`` of stored rows from ``df`` (matched on the keys) where they are null.

    For values learnt after a row was written (a note's patient, found through its
    encounter once the encounter arrived). Inserts nothing; ``df`` holds the keys and
    ``columns``, one row per key.
    """
    if not spec.keys:
        raise error(ErrorCode.TABLE_SPEC_INVALID, table=spec.name, reason="fill needs keys")
    bad = [c for c in columns if c not in spec.column_names or c in spec.keys]
    if bad:
        raise error(
            ErrorCode.INPUT_SCHEMA_MISMATCH,
            table=spec.name,
            reason="fill columns must be non-key columns of the spec",
            columns=", ".join(bad),
        )
    before = log_version(spark, spec.name)
    source = df.select(
        *[F.col(k).cast(spec.column(k).dataType).alias(k) for k in spec.keys],
        *[F.col(c).cast(spec.column(c).dataType).alias(c) for c in columns],
    ).dropDuplicates(list(spec.keys))
    on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in spec.keys)
    when = " OR ".join(f"(t.{_quote(c)} IS NULL AND s.{_quote(c)} IS NOT NULL)" for c in columns)
    assignments: dict[str, str | Column] = {
        _quote(c): f"coalesce(t.{_quote(c)}, s.{_quote(c)})" for c in columns
    }

    def merge() -> None:
        DeltaTable.forName(spark, spec.name).alias("t").merge(
            source.alias("s"), on
        ).whenMatchedUpdate(condition=when, set=assignments).execute()

    token = _with_retries(_tagged_merge(spark, merge), spec.name, "merge")
    return _commit_report(spark, spec.name, token, after=before)


def append(
    spark: SparkSession, spec: TableSpec, df: DataFrame, *, fresh_keys: bool = False
) -> WriteReport:
    """Append ``df`` to an append-only table (audit logs, run reports).

    A keyed table takes :func:`upsert`, unless ``fresh_keys``: the caller vouches that every
    key of ``df`` is new, once in ``df`` and never stored (a UUID4 minted for the row, as
    ``ops.job_runs`` records a run). A blind append then stores what an insert-only MERGE
    would, without the MERGE's join of the table; reading no rows, it conflicts with no
    concurrent write of data (only with a change of the table's metadata, retried like
    any conflict). A caller wrong about it stores duplicate keys.
    """
    if spec.keys and not fresh_keys:
        raise error(
            ErrorCode.TABLE_SPEC_INVALID, table=spec.name, reason="keyed tables take upsert"
        )
    ensure_table(spark, spec)
    before = log_version(spark, spec.name)
    rows = conform(df, spec)

    def write() -> str:
        token = _new_token()  # a writer option: per write, safe across threads
        rows.write.format("delta").mode("append").option("userMetadata", token).saveAsTable(
            spec.name
        )
        return token

    token = _with_retries(write, spec.name, "append")
    return _commit_report(spark, spec.name, token, after=before)


def _with_retries(action: Callable[[], T], table: str, operation: str) -> T:
    """Retry Delta's optimistic-concurrency conflicts with jittered backoff."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return action()
        except RETRYABLE as exc:
            if attempt == MAX_ATTEMPTS:
                raise error(
                    ErrorCode.WRITE_CONFLICT, table=table, operation=operation, attempts=attempt
                ) from exc
            delay = min(8.0, 0.25 * 2**attempt) * (0.5 + random.random())  # noqa: S311
            logger.warning(
                "%s on %s conflicted (attempt %d); retrying in %.1fs",
                operation,
                table,
                attempt,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# MERGE takes its commit metadata from the session conf, which threads sharing a session
# share too: merges of one process set it and commit one at a time.
_MERGE_TAG_LOCK = threading.Lock()


def _new_token() -> str:
    return f"lakehouse-write-{uuid.uuid4()}"


def _tagged_merge(spark: SparkSession, merge: Callable[[], object]) -> Callable[[], str]:
    """Wrap ``merge`` so its Delta commit carries a unique token in ``userMetadata``.

    The token finds this write's own commit in the table history afterwards, even when
    other writers committed in between (reading "the latest commit" would not).
    """

    def run() -> str:
        token = _new_token()
        with _MERGE_TAG_LOCK:
            previous = spark.conf.get(_USER_METADATA, None)
            spark.conf.set(_USER_METADATA, token)
            try:
                merge()
            finally:
                if previous is None:
                    spark.conf.unset(_USER_METADATA)
                else:
                    spark.conf.set(_USER_METADATA, previous)
        return token

    return run


def _commit_report(
    spark: SparkSession, table: str, token: str, *, after: int | None = None
) -> WriteReport:
    """Counts of the commit tagged ``token``; zeros when the write committed nothing.

    ``after``: the table's version before the write. The commit is then looked for in the
    commit files after it (no Spark job); else, or where those are not readable, in the
    last 100 entries of the table's history (one Spark job).
    """
    found = None if after is None else tagged_commit(spark, table, token, after=after)
    if found is not None:
        if found.commit is None:
            return WriteReport(
                table=table, version=found.latest, source_rows=0, inserted=0, updated=0
            )
        c = found.commit
        return _report(table, c.version, c.operation, c.metrics)
    history = DeltaTable.forName(spark, table).history(100)
    row = (
        history.where(F.col("userMetadata") == token)
        .select("version", "operation", "operationMetrics")
        .first()
    )
    if row is None:
        latest = history.select(F.max("version").alias("v")).first()
        version = int(latest["v"]) if latest is not None and latest["v"] is not None else 0
        return WriteReport(table=table, version=version, source_rows=0, inserted=0, updated=0)
    return _report(table, int(row["version"]), row["operation"], row["operationMetrics"] or {})


def _report(table: str, version: int, operation: str, m: dict[str, str]) -> WriteReport:
    """A :class:`WriteReport` from a commit's operation and its operation metrics."""

    def n(name: str) -> int:
        return int(m.get(name, 0) or 0)

    if operation == "MERGE":
        return WriteReport(
            table=table,
            version=version,
            source_rows=n("numSourceRows"),
            inserted=n("numTargetRowsInserted"),
            updated=n("numTargetRowsUpdated"),
            deleted=n("numTargetRowsDeleted"),
        )
    return WriteReport(
        table=table,
        version=version,
        source_rows=n("numOutputRows"),
        inserted=n("numOutputRows"),
        updated=0,
    )


def replace_scoped(
    spark: SparkSession,
    spec: TableSpec,
    df: DataFrame,
    *,
    scope: DataFrame,
    by: tuple[str, ...],
    stable: tuple[str, ...] = (),
) -> WriteReport:
    """Make the stored rows of each ``scope`` group (values of columns ``by``) equal ``df``.

    One MERGE: rows of ``df`` are upserted as by :func:`upsert`; stored rows whose ``by``
    values are in ``scope`` but whose key is not in ``df`` are deleted (the entities of an
    updated or deleted note, say). Rows equal to what is stored are not rewritten, ignoring
    the spec's volatile columns and ``stable`` (columns recording when a row was derived,
    kept from the first write while the rest is unchanged), so a rerun commits nothing.
    """
    if not spec.keys:
        raise error(ErrorCode.TABLE_SPEC_INVALID, table=spec.name, reason="replace needs keys")
    bad = [c for c in (*by, *stable) if c not in spec.column_names]
    if bad:
        raise error(
            ErrorCode.INPUT_SCHEMA_MISMATCH,
            table=spec.name,
            reason="scope and stable columns must be columns of the spec",
            columns=", ".join(bad),
        )
    ensure_table(spark, spec)
    before = log_version(spark, spec.name)
    source = _check_unique(conform(df, spec), spec).withColumn("__delete", F.lit(False))
    groups = scope.select(*[F.col(c).cast(spec.column(c).dataType).alias(c) for c in by])
    stored = spark.table(spec.name).join(groups.distinct(), list(by), "left_semi")
    gone = (
        stored.select(*spec.keys)
        .join(source.select(*spec.keys), list(spec.keys), "left_anti")
        .withColumn("__delete", F.lit(True))
    )
    merged = source.unionByName(gone, allowMissingColumns=True)
    ignored = set(spec.keys) | set(spec.volatile) | set(stable)
    value_cols = [c for c in spec.column_names if c not in ignored]
    on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in spec.keys)
    differs = " OR ".join(
        f"NOT ({_comparable(spec, c, 't')} <=> {_comparable(spec, c, 's')})" for c in value_cols
    )
    update_when = f"NOT s.__delete AND ({differs})" if value_cols else "false"
    assignments: dict[str, str | Column] = {_quote(c): f"s.{_quote(c)}" for c in spec.column_names}

    def merge() -> None:
        (
            DeltaTable.forName(spark, spec.name)
            .alias("t")
            .merge(merged.alias("s"), on)
            .whenMatchedDelete(condition="s.__delete")
            .whenMatchedUpdate(condition=update_when, set=assignments)
            .whenNotMatchedInsert(condition="NOT s.__delete", values=assignments)
            .execute()
        )

    token = _with_retries(_tagged_merge(spark, merge), spec.name, "merge")
    return _commit_report(spark, spec.name, token, after=before)
