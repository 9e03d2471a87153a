"""Generated secret keys: created on first use under the secrets folder, mode 0600.

Keys never live in the repository or in logs. A setting (e.g. ``session_secret``) overrides
the generated key; a hospital deployment points the secrets folder at its own key store.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings


def secret_key(folder: Path, name: str, *, nbytes: int = 32) -> bytes:
    """The key ``name`` (hex in ``<folder>/<name>.key``), generated when it is missing."""
    path = folder / f"{name}.key"
    try:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Written whole under a private name, then linked into place: another process
            # (a second replica starting at the same moment) reads either no file or the
            # whole key, never an empty one.
            tmp = folder / f".{name}.key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(nbytes))
                    out.flush()
                    os.fsync(out.fileno())
                os.link(tmp, path)  # FileExistsError when another process was first
            finally:
                tmp.unlink(missing_ok=True)
        if path.stat().st_mode & 0o077:
            raise error(
                ErrorCode.STORAGE_UNAVAILABLE,
                path=str(path),
                reason="key file is readable by group or others (must be 0600)",
            )
        return bytes.fromhex(path.read_text().strip())
    except FileExistsError:  # another process created it between exists() and link()
        return bytes.fromhex(path.read_text().strip())
    except OSError as exc:
        raise error(
            ErrorCode.STORAGE_UNAVAILABLE, path=str(path), reason=type(exc).__name__
        ) from exc


def session_key(cfg: Settings) -> bytes:
    """HMAC key of session tokens: ``security.session_secret`` or the generated key file."""
    secret = cfg.security.session_secret
    if secret is not None:
        return secret.get_secret_value().encode()
    assert cfg.security.secrets_dir is not None
    return secret_key(cfg.security.secrets_dir, "session")


def pseudonym_key(cfg: Settings) -> bytes:
    """Key of the audit log's patient pseudonyms (docs/adr/0005)."""
    assert cfg.security.secrets_dir is not None
    return secret_key(cfg.security.secrets_dir, "audit-pseudonym")


def deid_key(cfg: Settings) -> bytes:
    """Key of the de-identified views' person tokens and date shifts (docs/security.md).

    ``deid.token_secret`` or the generated ``<secrets_dir>/deid-token.key``. It is used only
    where ``governance.person_keys`` rows are derived, never in a view's SQL text.
    """
    secret = cfg.deid.token_secret
    if secret is not None:
        return secret.get_secret_value().encode()
    assert cfg.security.secrets_dir is not None
    return secret_key(cfg.security.secrets_dir, "deid-token")
