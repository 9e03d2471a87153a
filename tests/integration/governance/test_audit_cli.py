"""`lakehouse audit verify` on the real audit.events: exit 0 when intact, 65 and LH-SEC-010
at the first broken seq after an attacker edits a row."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

import lakehouse.spark
import lakehouse_cli.main as cli
from lakehouse.governance.audit import Action, AuditEvent
from lakehouse.governance.audit_delta import audit_log
from lakehouse.settings import Settings


def test_audit_verify_command(
    spark: SparkSession, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    monkeypatch.setattr(lakehouse.spark, "build_spark", lambda cfg: spark)
    log = audit_log(spark, settings)
    log.record(
        AuditEvent(Action.LOGIN_SUCCESS, "dr_a", role="clinician"),
        AuditEvent(Action.READ, "dr_a", role="clinician", target="silver.patients", row_count=3),
        AuditEvent(Action.EXPORT, "dr_a", role="clinician", target="silver.patients"),
    )
    ok = CliRunner().invoke(cli.app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "hash chain intact" in ok.output

    spark.sql("ALTER TABLE audit.events SET TBLPROPERTIES ('delta.appendOnly' = 'false')")
    spark.sql("UPDATE audit.events SET row_count = 0 WHERE seq = 2")
    broken = CliRunner().invoke(cli.app, ["audit", "verify"])
    assert broken.exit_code == 65
    assert "LH-SEC-010" in broken.output
    assert "seq 2" in broken.output
