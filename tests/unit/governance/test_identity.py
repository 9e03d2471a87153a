"""Local accounts: password policy, lockout, second factor, sessions; every outcome audited."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.audit import MemoryAuditLog, first_broken
from lakehouse.governance.identity import IdentityService, check_password
from lakehouse.governance.sessions import Principal, SessionSigner
from lakehouse.settings import SecuritySettings

GOOD = "Correct-Horse-42"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit() -> MemoryAuditLog:
    return MemoryAuditLog()


@pytest.fixture
def ids(tmp_path: Path, audit: MemoryAuditLog, clock: Clock) -> IdentityService:
    cfg = SecuritySettings()
    signer = SessionSigner(b"k" * 32, 60 * cfg.session_ttl_minutes, clock=clock)
    return IdentityService(tmp_path / "accounts.db", audit, cfg, signer, clock=clock)


ADMIN = Principal("root", "admin")


def _code(exc: pytest.ExceptionInfo[LakehouseError]) -> ErrorCode:
    return exc.value.code


@pytest.mark.parametrize(
    ("password", "username", "ok"),
    [
        ("Correct-Horse-42", "alice", True),
        ("short1A!", "alice", False),  # too short
        ("alllowercaseletters", "alice", False),  # one class
        ("Alice-Password-42", "alice", False),  # contains the user name
        ("密码Password-2024", "bob", True),  # non-ASCII counts as a symbol class
    ],
)
def test_password_policy(password: str, username: str, ok: bool) -> None:
    cfg = SecuritySettings()
    if ok:
        check_password(password, username, cfg)
    else:
        with pytest.raises(LakehouseError) as exc:
            check_password(password, username, cfg)
        assert _code(exc) is ErrorCode.PASSWORD_POLICY
        assert password not in str(exc.value)


def test_login_issues_a_session_and_is_audited(ids: IdentityService, audit: MemoryAuditLog) -> None:
    ids.create_account(ADMIN, "dr_li", GOOD, ("clinician",), department="cardio")
    token, who = ids.login("dr_li", GOOD)
    assert ids.session(token) == who
    assert (who.role, who.department) == ("clinician", "cardio")
    assert audit.actions() == ["permission_change", "login_success"]
    assert first_broken(audit.rows) is None
    assert GOOD not in repr(audit.rows)
    import sqlite3

    stored = sqlite3.connect(ids.db).execute("SELECT password_hash FROM accounts").fetchone()[0]
    assert stored.startswith("$argon2id$")


def test_ten_wrong_passwords_lock_the_account(
    ids: IdentityService, audit: MemoryAuditLog, clock: Clock
) -> None:
    ids.create_account(ADMIN, "nurse_w", GOOD, ("nurse",))
    for _ in range(9):
        with pytest.raises(LakehouseError) as exc:
            ids.login("nurse_w", "Wrong-Password-1")
        assert _code(exc) is ErrorCode.AUTH_FAILED
    with pytest.raises(LakehouseError) as exc:
        ids.login("nurse_w", "Wrong-Password-1")
    assert _code(exc) is ErrorCode.ACCOUNT_LOCKED
    with pytest.raises(LakehouseError) as exc:  # even the right password is refused now
        ids.login("nurse_w", GOOD)
    assert _code(exc) is ErrorCode.ACCOUNT_LOCKED
    assert audit.actions().count("login_failure") == 10
    assert audit.actions().count("lockout") == 1
    clock.now += 31 * 60  # after the cooling-off period
    ids.login("nurse_w", GOOD)
    assert audit.actions()[-1] == "login_success"


def test_unknown_user_fails_like_a_wrong_password(
    ids: IdentityService, audit: MemoryAuditLog
) -> None:
    with pytest.raises(LakehouseError) as exc:
        ids.login("nobody", GOOD)
    assert _code(exc) is ErrorCode.AUTH_FAILED
    assert audit.actions() == ["login_failure"]


@pytest.mark.parametrize("role", ["auditor", "exporter"])
def test_privileged_login_needs_the_second_factor(
    ids: IdentityService, clock: Clock, role: str
) -> None:
    secret = ids.create_account(ADMIN, f"{role}_zhang", GOOD, (role,), institutions=("H1",))
    assert secret is not None
    for bad in (None, "000000"):
        with pytest.raises(LakehouseError) as exc:
            ids.login(f"{role}_zhang", GOOD, totp=bad)
        assert _code(exc) is ErrorCode.SECOND_FACTOR_REQUIRED
    code = pyotp.TOTP(secret).at(int(clock.now))
    _, who = ids.login(f"{role}_zhang", GOOD, totp=code)
    assert who.role == role


def test_admin_and_auditor_are_separated_and_only_admin_manages(ids: IdentityService) -> None:
    with pytest.raises(LakehouseError) as exc:
        ids.create_account(ADMIN, "both", GOOD, ("admin", "auditor"))
    assert _code(exc) is ErrorCode.ACCESS_DENIED
    with pytest.raises(LakehouseError) as exc:
        ids.create_account(Principal("dr", "clinician"), "x_user", GOOD, ("nurse",))
    assert _code(exc) is ErrorCode.ACCESS_DENIED


def test_login_fails_closed_when_the_audit_log_is_down(
    ids: IdentityService, audit: MemoryAuditLog
) -> None:
    ids.create_account(ADMIN, "dr_wu", GOOD, ("clinician",))
    audit.fail = True
    with pytest.raises(LakehouseError) as exc:
        ids.login("dr_wu", GOOD)
    assert _code(exc) is ErrorCode.AUDIT_WRITE_FAILED


def test_sessions_expire_and_reject_forgery(clock: Clock) -> None:
    signer = SessionSigner(b"s" * 32, 60, clock=clock)
    token = signer.issue(Principal("dr", "clinician", institutions=("H01",)))
    assert signer.verify(token).institutions == ("H01",)
    body, sig = token.split(".")
    for bad, reason in ((body[:-2] + "AA." + sig, "bad signature"), ("garbage", "malformed")):
        with pytest.raises(LakehouseError) as exc:
            signer.verify(bad)
        assert _code(exc) is ErrorCode.SESSION_INVALID
        assert exc.value.params["reason"] == reason
    assert "s" * 32 not in repr(signer)
    clock.now += 61
    with pytest.raises(LakehouseError) as exc:
        signer.verify(token)
    assert exc.value.params["reason"] == "expired"


def test_configured_service_uses_the_data_folder(tmp_path: Path) -> None:
    from lakehouse.governance.identity import identity_service
    from lakehouse.settings import Settings

    cfg = Settings(data_dir=tmp_path, security={"lockout_threshold": 2})  # type: ignore[call-arg]
    svc = identity_service(cfg, MemoryAuditLog())
    svc.create_account(ADMIN, "dr_he", GOOD, ("clinician",))
    for code in (ErrorCode.AUTH_FAILED, ErrorCode.ACCOUNT_LOCKED):
        with pytest.raises(LakehouseError) as exc:
            svc.login("dr_he", "Wrong-Password-9")
        assert exc.value.code is code
    assert (tmp_path / "governance" / "accounts.db").exists()
    assert (tmp_path / "secrets" / "session.key").exists()
