"""The plan guard: what a Spark Connect client may ask the server to run, rewritten under
the caller's policy before it reaches Spark (docs/adr/0033).

A Spark Connect request carries an unresolved logical plan (protobuf), not SQL text. The
guard walks the whole plan and lets through only what reads governed data as the SQL
guard would let the caller read it:

* every table a plan reads (``spark.table``/``spark.read.table``, with ``versionAsOf``
  time travel) and every SQL text (``spark.sql``, ``selectExpr``, ``expr``) is replaced by
  the query :meth:`lakehouse.governance.sql_guard.SqlGuard.rewrite` returns for the caller:
  visible columns only, row filters (institution, department) inside, refused outright where
  the role has no grant. Every transformation above (select, filter, join, group, window,
  sort, pandas/arrow collection...) sees only those rows and columns;
* relations, expressions, commands and catalog calls come from allowlists. Everything that
  would run the caller's code on the server (Python/Scala UDFs, ``mapInPandas``, UDTFs, data
  sources), read files by path (``spark.read.load``, ``input_files``), write (``df.write``,
  ``saveAsTable``, temporary views, DDL) or reach outside the allowlist (extensions, ML,
  pipelines, streaming) is refused with ``LH-SCN-002``, naming the operation, never data;
* a JVM-reflection function (``reflect``, ``java_method``) is refused wherever it appears,
  and a SQL expression fragment may hold no subquery (it could name a table).

The rewritten plan is what the server runs; the guarded queries come back so the gateway
can check the named patients against the caller's scope and audit the read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
import zstandard
from google.protobuf.message import DecodeError, Message
from pyspark.sql.connect.proto import base_pb2 as pb
from pyspark.sql.connect.proto import commands_pb2 as cmd
from pyspark.sql.connect.proto import expressions_pb2 as ex
from pyspark.sql.connect.proto import relations_pb2 as rel
from sqlglot import exp
from sqlglot.errors import SqlglotError

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.sql_guard import FORBIDDEN_FUNCTIONS, GuardedQuery

#: Relations that transform their inputs (walked: their inputs and expressions are guarded).
TRANSFORMS = frozenset({
    "project", "filter", "join", "set_op", "sort", "limit", "aggregate", "sample", "offset",
    "deduplicate", "subquery_alias", "repartition", "to_df", "with_columns_renamed",
    "show_string", "drop", "tail", "with_columns", "hint", "unpivot", "to_schema",
    "repartition_by_expression", "collect_metrics", "parse", "html_string", "transpose",
    "as_of_join", "lateral_join", "fill_na", "drop_na", "replace", "summary", "crosstab",
    "describe", "cov", "corr", "approx_quantile", "freq_items", "sample_by",
})  # fmt: skip
#: Relations that read no table (rows the client sent, a range of numbers).
SOURCES = frozenset({"local_relation", "range"})
#: Expression kinds that compute over the columns they are given.
EXPRESSIONS = frozenset({
    "literal", "unresolved_attribute", "unresolved_function", "expression_string",
    "unresolved_star", "alias", "cast", "unresolved_regex", "sort_order", "lambda_function",
    "window", "unresolved_extract_value", "update_fields", "unresolved_named_lambda_variable",
    "call_function", "named_argument_expression",
})  # fmt: skip
#: Catalog calls that only read metadata (names, columns, existence) or set the session's
#: current database/catalog (the guard needs ``schema.table`` anyway).
CATALOG_READS = frozenset({
    "current_database", "set_current_database", "list_databases", "list_tables",
    "list_functions", "list_columns", "get_database", "get_table", "get_function",
    "database_exists", "table_exists", "function_exists", "current_catalog",
    "set_current_catalog", "list_catalogs", "list_views", "is_cached",
})  # fmt: skip
#: What a refused relation, expression or command is, for the error message.
_WHAT = {
    "map_partitions": "mapInPandas/mapInArrow (code would run on the server)",
    "group_map": "applyInPandas (code would run on the server)",
    "co_group_map": "cogroup applyInPandas (code would run on the server)",
    "apply_in_pandas_with_state": "applyInPandasWithState (code would run on the server)",
    "common_inline_user_defined_table_function": "a Python UDTF (code would run on the server)",
    "common_inline_user_defined_data_source": "a Python data source (code would run on the server)",
    "common_inline_user_defined_function": "a user-defined function (code would run on the server)",
    "typed_aggregate_expression": "a typed aggregate (code would run on the server)",
    "cached_local_relation": "a local relation uploaded as an artifact",
    "chunked_cached_local_relation": "a local relation uploaded as an artifact",
    "cached_remote_relation": "a server-side cached DataFrame",
    "with_relations": "SQL with DataFrame arguments",
    "unresolved_table_valued_function": "a table-valued function",
    "relation_changes": "a table's change feed",
    "write_operation": "df.write (the gateway is read-only)",
    "write_operation_v2": "df.writeTo (the gateway is read-only)",
    "create_dataframe_view": "a temporary view (use the DataFrame itself)",
    "merge_into_table_command": "MERGE (the gateway is read-only)",
    "register_function": "registering a function",
    "register_table_function": "registering a table function",
    "register_data_source": "registering a data source",
    "checkpoint_command": "checkpoint (it writes files)",
}


@dataclass
class GuardedPlan:
    """A plan the guard let through: the rewritten request plan and the guarded queries of
    every table and SQL text in it (what the audit event and the scope check need)."""

    plan: pb.Plan
    queries: list[GuardedQuery] = field(default_factory=list)
    #: guarded SQL -> the client's SQL text: a ``spark.sql`` command's relation comes back
    #: from the server, and the client keeps its own text (rewritten again on each use).
    originals: dict[str, str] = field(default_factory=dict)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(sorted({t for q in self.queries for t in q.tables}))


#: Rewrites one SQL query under the caller's policy (``AccessService.rewrite`` bound to
#: the caller): the guarded query, or a ``LakehouseError`` (refused, audited).
Rewrite = Callable[[str], GuardedQuery]


def refused(operation: str, reason: str) -> LakehouseError:
    """``LH-SCN-002`` for an operation the gateway does not run."""
    return error(ErrorCode.CONNECT_REFUSED, operation=operation, reason=reason)


class PlanGuard:
    """Walks one request's plan and rewrites it for one caller (``rewrite``)."""

    def __init__(self, rewrite: Rewrite, *, max_plan_bytes: int = 128 << 20) -> None:
        self._rewrite = rewrite
        self.max_plan_bytes = max_plan_bytes
        self.queries: list[GuardedQuery] = []
        self.originals: dict[str, str] = {}

    # -- entry points ---------------------------------------------------------------------
    def plan(self, plan: pb.Plan) -> GuardedPlan:
        """The guarded copy of an ``ExecutePlan``/``AnalyzePlan`` plan."""
        out = pb.Plan()
        kind = plan.WhichOneof("op_type")
        if kind == "compressed_operation":
            plan = self._decompressed(plan.compressed_operation)
            kind = plan.WhichOneof("op_type")
        if kind == "root":
            out.root.CopyFrom(self.relation(plan.root))
        elif kind == "command":
            out.command.CopyFrom(self.command(plan.command))
        else:
            raise refused("an empty plan", "the request holds no relation or command")
        return GuardedPlan(out, list(self.queries), dict(self.originals))

    def relation(self, r: rel.Relation) -> rel.Relation:
        """A guarded copy of ``r``: tables and SQL text rewritten, the rest checked."""
        kind = r.WhichOneof("rel_type")
        if kind == "read":
            return self._read(r)
        if kind == "sql":
            return self._sql(r)
        if kind == "catalog":
            cat = r.catalog.WhichOneof("cat_type")
            if cat not in CATALOG_READS:
                raise refused(f"catalog.{cat}", "the gateway only reads the catalog")
            return r
        if kind in SOURCES:
            return r
        if kind not in TRANSFORMS:
            raise refused(_WHAT.get(kind or "", f"relation {kind}"), "not allowed through the "
                          "gateway")  # fmt: skip
        out = rel.Relation()
        out.CopyFrom(r)
        self._walk(getattr(out, kind))
        return out

    def command(self, c: cmd.Command) -> cmd.Command:
        """A guarded copy of a command: only ``spark.sql`` (a query; its text rewritten)."""
        kind = c.WhichOneof("command_type")
        if kind == "sql_command":
            return self._sql_command(c)
        if kind == "get_resources_command":
            return c
        raise refused(_WHAT.get(kind or "", f"command {kind}"), "the gateway only reads")

    def expression(self, e: ex.Expression) -> None:
        """Refuse an expression kind or function outside the allowlist (in place: nothing
        in an expression is rewritten)."""
        kind = e.WhichOneof("expr_type")
        if kind not in EXPRESSIONS:
            raise refused(_WHAT.get(kind or "", f"expression {kind}"), "not allowed through "
                          "the gateway")  # fmt: skip
        if kind == "unresolved_function":
            f = e.unresolved_function
            if f.is_user_defined_function:
                raise refused(_WHAT["common_inline_user_defined_function"], "not allowed")
            _check_function(f.function_name)
        elif kind == "call_function":
            _check_function(e.call_function.function_name)
        elif kind == "expression_string":
            check_sql_expression(e.expression_string.expression)
        self._walk(getattr(e, kind))

    # -- relations ------------------------------------------------------------------------
    def _read(self, r: rel.Relation) -> rel.Relation:
        read = r.read
        if read.WhichOneof("read_type") != "named_table":
            raise refused("spark.read of files or a data source", "read tables by name: "
                          "spark.table('schema.table')")  # fmt: skip
        if read.is_streaming:
            raise refused("a streaming read", "the gateway answers batch reads")
        options = {k.lower(): v for k, v in read.named_table.options.items()}
        version = options.pop("versionasof", None)
        if options:
            raise refused("read options", f"only versionAsOf is allowed ({len(options)} other)")
        name = read.named_table.unparsed_identifier
        if not _IDENTIFIER.fullmatch(name):
            raise refused("a table name", "use schema.table")
        text = f"SELECT * FROM {name}"  # noqa: S608 - a checked identifier, rewritten below
        if version is not None:
            if not version.isdigit():
                raise refused("versionAsOf", "an integer version")
            text += f" VERSION AS OF {int(version)}"
        return self._as_sql(r, text)

    def _sql(self, r: rel.Relation) -> rel.Relation:
        q = r.sql
        if q.args or q.pos_args or q.named_arguments or q.pos_arguments:
            raise refused("SQL parameters", "inline the values or filter the DataFrame")
        out = self._as_sql(r, q.query)
        self.originals[out.sql.query] = q.query
        return out

    def _as_sql(self, r: rel.Relation, text: str) -> rel.Relation:
        guarded = self._rewrite(text)
        self.queries.append(guarded)
        out = rel.Relation()
        if r.HasField("common"):
            out.common.CopyFrom(r.common)  # the plan id the client's column references use
        out.sql.query = guarded.sql
        return out

    def _sql_command(self, c: cmd.Command) -> cmd.Command:
        s = c.sql_command
        if s.args or s.pos_args or s.named_arguments or s.pos_arguments:
            raise refused("SQL parameters", "inline the values or filter the DataFrame")
        out = cmd.Command()
        if s.HasField("input"):
            out.sql_command.input.CopyFrom(self.relation(s.input))
        else:
            out.sql_command.input.CopyFrom(self.relation(_sql_relation(s.sql)))
        return out

    def _walk(self, m: Message) -> None:
        """Guard every relation and expression below ``m`` (relations replaced in place)."""
        for fd, value in m.ListFields():
            kind = fd.message_type
            if kind is None:
                continue
            if kind.GetOptions().map_entry:
                kind = kind.fields_by_name["value"].message_type
                values = list(value.values()) if kind is not None else []
            else:
                values = list(value) if fd.is_repeated else [value]
            if kind is not None and kind.full_name == "google.protobuf.Any":
                raise refused("an extension", "not allowed through the gateway")
            for v in values:
                if isinstance(v, rel.Relation):
                    v.CopyFrom(self.relation(v))
                elif isinstance(v, ex.Expression):
                    self.expression(v)
                elif isinstance(v, Message):
                    self._walk(v)

    def _decompressed(self, op: pb.Plan.CompressedOperation) -> pb.Plan:
        if op.compression_codec != pb.CompressionCodec.COMPRESSION_CODEC_ZSTD:
            raise refused("a compressed plan", "only zstd")
        try:
            data = zstandard.ZstdDecompressor().decompress(
                op.data, max_output_size=self.max_plan_bytes
            )
        except zstandard.ZstdError:
            raise refused("a compressed plan", "it does not decompress") from None
        plan = pb.Plan()
        try:
            if op.op_type == pb.Plan.CompressedOperation.OpType.OP_TYPE_RELATION:
                plan.root.ParseFromString(data)
            elif op.op_type == pb.Plan.CompressedOperation.OpType.OP_TYPE_COMMAND:
                plan.command.ParseFromString(data)
            else:
                raise refused("a compressed plan", "unknown operation type")
        except DecodeError:
            raise refused("a compressed plan", "it does not parse") from None
        return plan


def _sql_relation(text: str) -> rel.Relation:
    r = rel.Relation()
    r.sql.query = text
    return r


#: ``schema.table`` as ``spark.table`` takes it (each part optionally back-quoted).
_IDENTIFIER = re.compile(r"`?[A-Za-z_]\w*`?\.`?[A-Za-z_]\w*`?")


def _check_function(name: str) -> None:
    if "." in name:
        raise refused("a catalog function", "only built-in functions")
    if name.lower() in FORBIDDEN_FUNCTIONS:
        raise refused(f"function {name.lower()}", "JVM reflection is not allowed")


def check_sql_expression(text: str) -> None:
    """Refuse a SQL expression fragment (``expr``, ``selectExpr``, ``filter`` strings) that
    holds a query, a table or a forbidden function."""
    try:
        tree = sqlglot.parse_one(f"SELECT {text}", read="spark")
    except SqlglotError:
        raise refused("a SQL expression", "it does not parse as Spark SQL") from None
    select = tree if isinstance(tree, exp.Select) else None
    if select is None or select.args.get("from") or select.args.get("where"):
        raise refused("a SQL expression", "an expression, not a query")
    for node in tree.walk():
        if node is not tree and isinstance(node, (exp.Query, exp.Table, exp.Subquery)):
            raise refused("a SQL expression", "no subquery or table in an expression")
        if isinstance(node, exp.Func) and node.name.lower() in FORBIDDEN_FUNCTIONS:
            raise refused(f"function {node.name.lower()}", "JVM reflection is not allowed")
