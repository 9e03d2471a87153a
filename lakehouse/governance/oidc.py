"""Hospital single sign-on: validate an OIDC ID/access token (JWT) against a JWKS file.

The hospital's identity provider signs tokens; the lakehouse checks signature, issuer,
audience and expiry with keys from ``security.oidc_jwks_path`` (no network call at login)
and maps claims to a :class:`Principal`. The caller audits the login like a local one.
"""

from __future__ import annotations

import json
from typing import Any

import jwt

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.sessions import ROLES, Principal
from lakehouse.settings import SecuritySettings


class OidcVerifier:
    """Checks tokens of one issuer with the keys of its JWKS file."""

    def __init__(self, cfg: SecuritySettings) -> None:
        if not (cfg.oidc_issuer and cfg.oidc_audience and cfg.oidc_jwks_path):
            raise error(
                ErrorCode.CONFIG_INVALID,
                setting="security.oidc_*",
                reason="issuer, audience and JWKS path are all required for SSO",
            )
        self.cfg = cfg
        try:
            self.keys = jwt.PyJWKSet.from_json(cfg.oidc_jwks_path.read_text())
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise error(
                ErrorCode.CONFIG_INVALID,
                setting="security.oidc_jwks_path",
                reason=type(exc).__name__,
            ) from exc

    def _key(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self.keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise error(ErrorCode.IDENTITY_TOKEN_INVALID, reason="unknown signing key")

    def verify(self, token: str, *, role: str | None = None) -> Principal:
        """The principal the token names, acting in ``role`` (default: its first known role)."""
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=self.cfg.oidc_algorithms,
                audience=self.cfg.oidc_audience,
                issuer=self.cfg.oidc_issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise error(ErrorCode.IDENTITY_TOKEN_INVALID, reason=type(exc).__name__) from exc
        raw = claims.get(self.cfg.oidc_roles_claim) or []
        roles = [r for r in (json.loads(raw) if isinstance(raw, str) else raw) if r in ROLES]
        acting = role if role in roles else (roles[0] if roles and role is None else None)
        if acting is None:
            raise error(ErrorCode.IDENTITY_TOKEN_INVALID, reason="no permitted role in the token")
        institutions = claims.get("institutions") or []
        return Principal(
            str(claims.get("preferred_username") or claims["sub"]),
            acting,
            department=claims.get("department"),
            institutions=tuple(str(i) for i in institutions),
            auth="oidc",
        )
