"""The Spark Connect plan guard on protobuf plans (no Spark): tables become the guarded SQL
with the client's plan id kept, nested relations are guarded wherever they sit, compressed
plans are guarded after decompression, and extensions and UDFs are refused."""

from __future__ import annotations

import pytest
import zstandard
from pyspark.sql.connect.proto import base_pb2 as pb
from pyspark.sql.connect.proto import relations_pb2 as rel

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.sql_guard import GuardedQuery
from lakehouse.settings import Settings
from serving.spark_connect import listener_tls
from serving.spark_connect.plans import PlanGuard


def _rewrite(sql: str) -> GuardedQuery:
    return GuardedQuery(f"/*guarded*/ {sql}", ("deid.x",), (), False)


def _table(name: str, plan_id: int) -> rel.Relation:
    r = rel.Relation()
    r.common.plan_id = plan_id
    r.read.named_table.unparsed_identifier = name
    return r


def test_tables_in_a_join_become_guarded_sql_and_keep_their_plan_ids() -> None:
    plan = pb.Plan()
    join = plan.root.join
    join.left.CopyFrom(_table("deid.x", 1))
    join.right.CopyFrom(_table("deid.y", 2))
    guarded = PlanGuard(_rewrite).plan(plan)
    left, right = guarded.plan.root.join.left, guarded.plan.root.join.right
    assert (left.common.plan_id, left.sql.query) == (1, "/*guarded*/ SELECT * FROM deid.x")
    assert (right.common.plan_id, right.sql.query) == (2, "/*guarded*/ SELECT * FROM deid.y")
    assert len(guarded.queries) == 2
    assert plan.root.join.left.HasField("read")  # the request itself is left as it came


def test_a_compressed_plan_is_guarded_after_decompression() -> None:
    inner = _table("deid.x", 7)
    plan = pb.Plan()
    op = plan.compressed_operation
    op.data = zstandard.ZstdCompressor().compress(inner.SerializeToString())
    op.op_type = pb.Plan.CompressedOperation.OpType.OP_TYPE_RELATION
    op.compression_codec = pb.CompressionCodec.COMPRESSION_CODEC_ZSTD
    guarded = PlanGuard(_rewrite).plan(plan)
    assert guarded.plan.root.sql.query == "/*guarded*/ SELECT * FROM deid.x"


def test_time_travel_reads_the_pinned_version_and_other_options_are_refused() -> None:
    plan = pb.Plan()
    plan.root.CopyFrom(_table("deid.x", 1))
    plan.root.read.named_table.options["versionAsOf"] = "3"
    assert PlanGuard(_rewrite).plan(plan).plan.root.sql.query.endswith("VERSION AS OF 3")
    plan.root.read.named_table.options["path"] = "/data/silver"
    with pytest.raises(LakehouseError) as exc:
        PlanGuard(_rewrite).plan(plan)
    assert exc.value.code is ErrorCode.CONNECT_REFUSED


@pytest.mark.parametrize("kind", ["extension", "map_partitions", "data_source"])
def test_extensions_code_and_files_are_refused(kind: str) -> None:
    plan = pb.Plan()
    if kind == "extension":
        plan.root.extension.type_url = "type.googleapis.com/x.Y"
    elif kind == "map_partitions":
        plan.root.map_partitions.input.CopyFrom(_table("deid.x", 1))
    else:
        plan.root.read.data_source.format = "parquet"
    with pytest.raises(LakehouseError) as exc:
        PlanGuard(_rewrite).plan(plan)
    assert exc.value.code is ErrorCode.CONNECT_REFUSED


def test_plain_grpc_is_refused_off_loopback() -> None:
    cfg = Settings(spark_connect={"tls": False, "host": "0.0.0.0"})
    with pytest.raises(LakehouseError) as exc:
        listener_tls(cfg)
    assert exc.value.code is ErrorCode.CONFIG_INVALID
    assert listener_tls(Settings(spark_connect={"tls": False})) is None


def test_a_sql_command_keeps_the_clients_text_for_the_relation_the_server_sends_back() -> None:
    plan = pb.Plan()
    plan.command.sql_command.sql = "SELECT loinc FROM deid.x"
    guarded = PlanGuard(_rewrite).plan(plan)
    assert (
        guarded.plan.command.sql_command.input.sql.query == "/*guarded*/ SELECT loinc FROM deid.x"
    )
    assert guarded.originals == {"/*guarded*/ SELECT loinc FROM deid.x": "SELECT loinc FROM deid.x"}
