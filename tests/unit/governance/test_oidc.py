"""Hospital SSO: JWTs signed by a locally generated RSA key, checked against a JWKS file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.oidc import OidcVerifier
from lakehouse.settings import SecuritySettings

ISS, AUD = "https://sso.hospital.local", "lakehouse"


@pytest.fixture(scope="module")
def keys() -> tuple[Any, Any]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture
def verifier(tmp_path: Path, keys: tuple[Any, Any]) -> OidcVerifier:
    jwk = json.loads(RSAAlgorithm.to_jwk(keys[0].public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    cfg = SecuritySettings(oidc_issuer=ISS, oidc_audience=AUD, oidc_jwks_path=path)
    return OidcVerifier(cfg)


def _token(key: Any, **over: Any) -> str:
    claims = {
        "iss": ISS,
        "aud": AUD,
        "sub": "u-1",
        "preferred_username": "dr_wang",
        "exp": int(time.time()) + 300,
        "roles": ["clinician"],
        "department": "cardio",
        "institutions": ["H1"],
    }
    claims.update(over)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def test_valid_token_maps_to_a_principal(verifier: OidcVerifier, keys: tuple[Any, Any]) -> None:
    who = verifier.verify(_token(keys[0]))
    assert (who.username, who.role, who.department, who.institutions, who.auth) == (
        "dr_wang",
        "clinician",
        "cardio",
        ("H1",),
        "oidc",
    )


@pytest.mark.parametrize(
    ("over", "signer", "reason"),
    [
        ({"exp": 1}, 0, "ExpiredSignatureError"),
        ({"aud": "other"}, 0, "InvalidAudienceError"),
        ({"iss": "https://evil"}, 0, "InvalidIssuerError"),
        ({}, 1, "InvalidSignatureError"),
        ({"roles": ["superuser"]}, 0, "no permitted role in the token"),
    ],
)
def test_bad_tokens_are_rejected(
    verifier: OidcVerifier, keys: tuple[Any, Any], over: dict[str, Any], signer: int, reason: str
) -> None:
    with pytest.raises(LakehouseError) as exc:
        verifier.verify(_token(keys[signer], **over))
    assert exc.value.code is ErrorCode.IDENTITY_TOKEN_INVALID
    assert exc.value.params["reason"] == reason


def test_sso_needs_its_settings() -> None:
    with pytest.raises(LakehouseError) as exc:
        OidcVerifier(SecuritySettings())
    assert exc.value.code is ErrorCode.CONFIG_INVALID
