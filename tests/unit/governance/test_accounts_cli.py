"""`lakehouse accounts create|unlock`: the host operator creates the first accounts (the
password from a prompt or stdin, never an argument), privileged ones get a TOTP secret to
enrol, every change is an audited admin action, and the accounts sign in.

The audit log here is the in-memory one: the Delta audit log is tested on its own
(tests/integration/governance/test_audit_log.py) and costs a commit per event."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
from typer.testing import CliRunner

import lakehouse.governance.audit_delta
import lakehouse.spark
import lakehouse_cli.main as cli
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.identity import identity_service
from lakehouse.settings import Settings

PASSWORD = "Correct-Horse-42!"


def test_operator_creates_accounts_that_sign_in(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = settings.model_copy(deep=True)
    cfg.security.accounts_db = tmp_path / "accounts.db"
    monkeypatch.setattr(cli, "_settings", lambda: cfg)
    log = MemoryAuditLog()
    monkeypatch.setattr(lakehouse.spark, "build_spark", lambda c: None)
    monkeypatch.setattr(lakehouse.governance.audit_delta, "audit_log", lambda spark, c: log)
    run = CliRunner()

    made = run.invoke(
        cli.app,
        ["accounts", "create", "dr_wang", "--role", "clinician", "--department", "CARD",
         "--institution", "H0001", "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert PASSWORD not in made.output
    admin = run.invoke(
        cli.app,
        ["accounts", "create", "it_li", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert admin.exit_code == 0, admin.output
    secret = re.search(r"secret=([A-Z2-7]+)", admin.output)
    assert secret is not None  # the otpauth:// URI to enrol

    again = run.invoke(
        cli.app, ["accounts", "create", "dr_wang", "--role", "nurse", "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert again.exit_code != 0
    weak = run.invoke(
        cli.app, ["accounts", "create", "dr_zhao", "--role", "nurse", "--password-stdin"],
        input="short\n",
    )  # fmt: skip
    assert weak.exit_code != 0

    ids = identity_service(cfg, log)
    _, who = ids.login("dr_wang", PASSWORD)
    assert (who.role, who.department, who.institutions) == ("clinician", "CARD", ("H0001",))
    with pytest.raises(LakehouseError) as no_factor:
        ids.login("it_li", PASSWORD)
    assert no_factor.value.code is ErrorCode.SECOND_FACTOR_REQUIRED
    _, it = ids.login("it_li", PASSWORD, totp=pyotp.TOTP(secret.group(1)).now())
    assert it.role == "admin"

    for _ in range(cfg.security.lockout_threshold):
        with pytest.raises(LakehouseError):
            ids.login("dr_wang", "wrong-password-x")
    with pytest.raises(LakehouseError) as locked:
        ids.login("dr_wang", PASSWORD)
    assert locked.value.code is ErrorCode.ACCOUNT_LOCKED
    unlocked = run.invoke(cli.app, ["accounts", "unlock", "dr_wang"])
    assert unlocked.exit_code == 0, unlocked.output
    ids.login("dr_wang", PASSWORD)

    targets = {(r["action"], r["target"]) for r in log.rows if r["actor"] == "local-operator"}
    assert ("permission_change", "account:dr_wang") in targets
    assert ("permission_change", "account:it_li") in targets
    assert ("admin", "account:dr_wang") in targets
