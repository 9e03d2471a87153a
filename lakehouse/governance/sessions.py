"""Who is acting (:class:`Principal`) and signed, expiring session tokens.

A token is ``base64url(JSON claims) . base64url(HMAC-SHA256(key, claims))``; the key comes
from ``security.session_secret`` or a generated key file (mode 0600). Tokens carry no
password and no patient data; they expire after ``security.session_ttl_minutes``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lakehouse.errors import ErrorCode, error

ROLES = ("clinician", "nurse", "analyst", "data_scientist", "exporter", "admin", "auditor")
#: Roles that need a second factor at login (exporter: a whole institution's records).
PRIVILEGED = frozenset({"exporter", "admin", "auditor"})


@dataclass(frozen=True)
class Principal:
    """An authenticated user acting in one role, with the attributes policies filter by."""

    username: str
    role: str
    department: str | None = None
    care_team: tuple[str, ...] = ()
    institutions: tuple[str, ...] = ()
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    auth: str = "local"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise error(
                ErrorCode.ACCESS_DENIED,
                role=self.role,
                operation="act as",
                table="(any)",
                reason="unknown role",
            )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session tokens (HMAC-SHA256, expiry in the signed claims)."""

    def __init__(self, key: bytes, ttl_s: int, *, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise error(
                ErrorCode.CONFIG_INVALID, setting="security.session_secret", reason="too short"
            )
        self._key = key
        self.ttl_s = ttl_s
        self.clock = clock

    def __repr__(self) -> str:  # never show the key
        return f"SessionSigner(ttl_s={self.ttl_s})"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def issue(self, principal: Principal) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {**asdict(principal), "iat": now, "exp": now + self.ttl_s}
        body = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str) -> Principal:
        """The principal of a valid, unexpired token; ``LH-SEC-005`` otherwise."""
        body, _, signature = token.partition(".")
        if not body or not signature:
            raise error(ErrorCode.SESSION_INVALID, reason="malformed")
        if not hmac.compare_digest(self._sign(body), signature):
            raise error(ErrorCode.SESSION_INVALID, reason="bad signature")
        try:
            claims = json.loads(_unb64(body))
            expires = int(claims.pop("exp"))
            claims.pop("iat", None)
            claims["care_team"] = tuple(claims.get("care_team", ()))
            claims["institutions"] = tuple(claims.get("institutions", ()))
            principal = Principal(**claims)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise error(ErrorCode.SESSION_INVALID, reason="malformed") from None
        if expires <= self.clock():
            raise error(ErrorCode.SESSION_INVALID, reason="expired")
        return principal
