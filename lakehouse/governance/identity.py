"""Local accounts: argon2id password hashes, password policy, lockout, TOTP, sessions.

Accounts live in a small SQLite file (``security.accounts_db``, docs/adr/0006): a login
must not wait for a Spark job, and the failure counter needs a transactional
read-modify-write. Every login success, failure and lockout, and every change of an
account, is an audit event; a login whose audit write fails is refused (fail closed).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.audit import Action, AuditEvent, AuditLog, record_or_refuse
from lakehouse.governance.keys import session_key
from lakehouse.governance.sessions import PRIVILEGED, ROLES, Principal, SessionSigner
from lakehouse.settings import SecuritySettings, Settings

_SCHEMA = """CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, roles TEXT NOT NULL,
    department TEXT, institutions TEXT NOT NULL, totp_secret TEXT,
    failures INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0)"""
#: Roles one account may never hold together (separation of duties).
EXCLUSIVE = frozenset({"admin", "auditor"})


def check_password(password: str, username: str, cfg: SecuritySettings) -> None:
    """Refuse a password that breaks the policy (``LH-SEC-004``); the reason names the rule."""
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if len(password) < cfg.password_min_length:
        reason = f"at least {cfg.password_min_length} characters"
    elif classes < cfg.password_min_classes:
        reason = f"at least {cfg.password_min_classes} of lower, upper, digit, symbol"
    elif username and username.lower() in password.lower():
        reason = "must not contain the user name"
    else:
        return
    raise error(ErrorCode.PASSWORD_POLICY, reason=reason)


@dataclass(frozen=True)
class Account:
    username: str
    password_hash: str
    roles: tuple[str, ...]
    department: str | None
    institutions: tuple[str, ...]
    totp_secret: str | None
    failures: int
    locked_until: float


class IdentityService:
    """Accounts, logins and sessions; inject the audit log and (for tests) the clock."""

    def __init__(
        self,
        db: Path,
        audit: AuditLog,
        cfg: SecuritySettings,
        signer: SessionSigner,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.audit, self.cfg, self.signer, self.clock = db, audit, cfg, signer, clock
        self._hasher = PasswordHasher()  # argon2id with the library's RFC 9106 defaults
        self._dummy = self._hasher.hash("not-a-real-password-0")
        db.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as con:
            con.execute(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def _get(self, con: sqlite3.Connection, username: str) -> Account | None:
        row = con.execute(
            "SELECT username, password_hash, roles, department, institutions, totp_secret, "
            "failures, locked_until FROM accounts WHERE username = ?",
            (username,),
        ).fetchone()
        if row is None:
            return None
        return Account(
            row[0], row[1], tuple(json.loads(row[2])), row[3], tuple(json.loads(row[4])),
            row[5], row[6], row[7],
        )  # fmt: skip

    def create_account(
        self,
        admin: Principal,
        username: str,
        password: str,
        roles: tuple[str, ...],
        *,
        department: str | None = None,
        institutions: tuple[str, ...] = (),
    ) -> str | None:
        """Create an account; returns the TOTP secret to enrol when a role is privileged."""
        self._require_admin(admin, username)
        _check_roles(admin, roles)
        check_password(password, username, self.cfg)
        totp = pyotp.random_base32() if PRIVILEGED & set(roles) else None
        record_or_refuse(
            self.audit,
            AuditEvent(
                Action.PERMISSION_CHANGE, admin.username, role=admin.role,
                session_id=admin.session_id, target=f"account:{username}",
                detail=json.dumps({"op": "create", "roles": sorted(roles)}),
            ),
        )  # fmt: skip
        with self._tx() as con:
            if self._get(con, username) is not None:
                raise error(ErrorCode.ACCOUNT_EXISTS, name=username)
            con.execute(
                "INSERT INTO accounts (username, password_hash, roles, department, "
                "institutions, totp_secret) VALUES (?, ?, ?, ?, ?, ?)",
                (username, self._hasher.hash(password), json.dumps(list(roles)), department,
                 json.dumps(list(institutions)), totp),
            )  # fmt: skip
        return totp

    def unlock(self, admin: Principal, username: str) -> None:
        """Clear an account's lockout (an audited admin action)."""
        self._require_admin(admin, username)
        record_or_refuse(
            self.audit,
            AuditEvent(Action.ADMIN, admin.username, role=admin.role, target=f"account:{username}",
                       session_id=admin.session_id, detail='{"op":"unlock"}'),
        )  # fmt: skip
        with self._tx() as con:
            con.execute(
                "UPDATE accounts SET failures = 0, locked_until = 0 WHERE username = ?",
                (username,),
            )

    def _require_admin(self, admin: Principal, username: str) -> None:
        if admin.role != "admin":
            self.audit.record(
                AuditEvent(Action.ACCESS_DENIED, admin.username, outcome="denied",
                           role=admin.role, target=f"account:{username}"),
            )  # fmt: skip
            raise error(
                ErrorCode.ACCESS_DENIED, role=admin.role, operation="manage",
                table="accounts", reason="only admin manages accounts",
            )  # fmt: skip

    def login(
        self, username: str, password: str, *, totp: str | None = None, role: str | None = None
    ) -> tuple[str, Principal]:
        """A session token and principal, or ``LH-SEC-001/002/003``; every outcome audited."""
        now = self.clock()
        with self._tx() as con:
            acc = self._get(con, username)
            if acc is None:
                self._verify(self._dummy, password)  # same cost as a real check
                self._fail(username, ErrorCode.AUTH_FAILED)
            assert acc is not None
            if acc.locked_until > now:
                self._fail(username, ErrorCode.ACCOUNT_LOCKED, count=acc.failures)
            acting = role or acc.roles[0]
            problem: ErrorCode | None = None
            if acting not in acc.roles or not self._verify(acc.password_hash, password):
                problem = ErrorCode.AUTH_FAILED
            elif acting in PRIVILEGED and not (
                totp and acc.totp_secret
                and pyotp.TOTP(acc.totp_secret).verify(totp, for_time=int(now), valid_window=1)
            ):  # fmt: skip
                problem = ErrorCode.SECOND_FACTOR_REQUIRED
            if problem is not None:
                failures = acc.failures + 1
                locked = failures >= self.cfg.lockout_threshold
                until = now + 60 * self.cfg.lockout_minutes if locked else 0.0
                con.execute(
                    "UPDATE accounts SET failures = ?, locked_until = ? WHERE username = ?",
                    (failures, until, username),
                )
            else:
                con.execute(
                    "UPDATE accounts SET failures = 0, locked_until = 0 WHERE username = ?",
                    (username,),
                )
        if problem is not None:
            if locked:
                self._fail(username, ErrorCode.ACCOUNT_LOCKED, count=failures, lockout=True)
            self._fail(username, problem, role=acting)
        principal = Principal(
            username, acting, department=acc.department, institutions=acc.institutions
        )
        record_or_refuse(
            self.audit,
            AuditEvent(Action.LOGIN_SUCCESS, username, role=acting,
                       session_id=principal.session_id),
        )  # fmt: skip
        return self.signer.issue(principal), principal

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _fail(
        self,
        username: str,
        code: ErrorCode,
        *,
        count: int = 0,
        role: str | None = None,
        lockout: bool = False,
    ) -> NoReturn:
        action = Action.LOCKOUT if lockout else Action.LOGIN_FAILURE
        record_or_refuse(
            self.audit,
            AuditEvent(action, username, outcome="denied", role=role, reason=code.id),
        )
        params: dict[str, object] = {}
        if code is ErrorCode.ACCOUNT_LOCKED:
            params = {"count": count, "detail": f"{self.cfg.lockout_minutes} minutes"}
        elif code is ErrorCode.SECOND_FACTOR_REQUIRED:
            params = {"role": role}
        raise error(code, **params)

    def session(self, token: str) -> Principal:
        """The principal of a session token (``LH-SEC-005`` when invalid or expired)."""
        return self.signer.verify(token)


def _check_roles(admin: Principal, roles: tuple[str, ...]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    reason = None
    if not roles or unknown:
        reason = "unknown or missing role"
    elif set(roles) >= EXCLUSIVE:
        reason = "admin and auditor are separated duties"
    if reason:
        raise error(
            ErrorCode.ACCESS_DENIED, role=admin.role, operation="grant",
            table="accounts", reason=reason,
        )  # fmt: skip


def identity_service(cfg: Settings, audit: AuditLog) -> IdentityService:
    """The configured identity service (accounts file, policy thresholds, session key)."""
    assert cfg.security.accounts_db is not None
    signer = SessionSigner(session_key(cfg), 60 * cfg.security.session_ttl_minutes)
    return IdentityService(cfg.security.accounts_db, audit, cfg.security, signer)
