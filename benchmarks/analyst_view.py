"""The lakehouse the service benchmarks read through: one local[2] Spark session on a
temporary data folder, ``rows`` lab-like rows in ``silver.bench_labs``, the view
``deid.bench_labs`` over them, a policy where analysts read ``deid.*`` of their institution,
and the analyst ``ana`` (the SQL endpoint's and the Spark Connect gateway's benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.identity import IdentityService
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal, SessionSigner
from lakehouse.governance.sql_guard import SqlGuard
from lakehouse.settings import SecuritySettings, Settings
from lakehouse.spark import build_spark
from lakehouse.tables.spec import TableSpec, column

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "Correct-Horse-42"
POLICY = """
version: 1
roles:
  analyst: {read: [deid.*], scope: [institution]}
  admin: {read: [ops.*], deny: [audit.*]}
  auditor: {read: [audit.*]}
"""


@dataclass
class AnalystView:
    spark: Any
    cfg: Settings
    view: TableSpec
    audit: MemoryAuditLog
    access: AccessService
    identity: IdentityService


def analyst_view(root: Path, rows: int) -> AnalystView:
    """Build it under ``root`` (a temporary folder the caller removes)."""
    from pyspark.sql.types import DoubleType, LongType, StringType

    cfg = Settings(  # type: ignore[call-arg]
        home=REPO,
        data_dir=root,
        spark={"master": "local[2]", "shuffle_partitions": 2, "ui_enabled": False},
    )
    spark = build_spark(cfg)
    view = TableSpec(
        name="deid.bench_labs",
        comment="Benchmark view.",
        columns=(
            column("lab_id", LongType(), "Id."),
            column("loinc", StringType(), "Code."),
            column("value", DoubleType(), "Value."),
            column("institution_code", StringType(), "Institution."),
        ),
    )
    spark.sql("CREATE SCHEMA IF NOT EXISTS silver")
    spark.sql("CREATE SCHEMA IF NOT EXISTS deid")
    spark.range(rows).selectExpr(
        "id AS lab_id", "'2345-7' AS loinc", "rand(7) * 10 AS value", "'H1' AS institution_code",
    ).write.format("delta").saveAsTable("silver.bench_labs")  # fmt: skip
    spark.sql("CREATE VIEW deid.bench_labs AS SELECT * FROM silver.bench_labs")
    (root / "policy.yaml").write_text(POLICY)
    audit = MemoryAuditLog()
    guard = SqlGuard(load_policy(root / "policy.yaml"), {view.name: view})
    access = AccessService(spark, guard, audit, b"b" * 32)
    identity = IdentityService(
        root / "accounts.db", audit, SecuritySettings(), SessionSigner(b"b" * 32, 900)
    )
    identity.create_account(
        Principal("root", "admin"), "ana", PASSWORD, ("analyst",), institutions=("H1",)
    )
    return AnalystView(spark, cfg, view, audit, access, identity)
