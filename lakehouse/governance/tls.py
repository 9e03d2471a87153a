"""TLS for every network service (``lakehouse serve``'s HTTPS, the SQL endpoint): the
hospital's certificate, or a generated self-signed one.

:func:`server_tls` gives the certificate and key files a server loads (uvicorn's
``ssl_certfile``/``ssl_keyfile``); :func:`server_context` and :func:`client_context` are the
standard-library contexts (TLS 1.2 or newer only) of servers and of clients such as httpx.

With ``security.tls_cert_file`` and ``security.tls_key_file`` set, those files are used as
they are (checked to load as a pair). Otherwise a self-signed certificate (ECDSA P-256,
valid one year; SAN ``localhost``, ``127.0.0.1``, ``::1``, the service's host and
``security.tls_hostnames``) is generated into ``<secrets_dir>/tls/`` with its key at mode
0600, and generated again when it expires within a week or no longer covers the configured
host names. The self-signed certificate is its own CA: clients trust exactly that file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings

logger = logging.getLogger(__name__)

MIN_VERSION = ssl.TLSVersion.TLSv1_2
VALID_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a server: certificate (chain included) and private key."""

    cert: Path
    key: Path


def server_tls(cfg: Settings) -> TlsFiles:
    """The certificate and key every HTTP service serves (hospital's, or self-signed)."""
    sec = cfg.security
    if (sec.tls_cert_file is None) != (sec.tls_key_file is None):
        given = sec.tls_cert_file or sec.tls_key_file
        raise error(
            ErrorCode.TLS_UNAVAILABLE,
            path=str(given),
            reason="set both security.tls_cert_file and security.tls_key_file, or neither",
        )
    if sec.tls_cert_file is not None and sec.tls_key_file is not None:
        files = TlsFiles(sec.tls_cert_file, sec.tls_key_file)
        _check_key_mode(files.key)
        _check_pair(files)
        return files
    return _self_signed(cfg)


def ca_file(cfg: Settings) -> Path:
    """The CA bundle clients verify the services with."""
    if cfg.security.tls_ca_file is not None:
        return cfg.security.tls_ca_file
    if cfg.security.tls_cert_file is not None:
        return cfg.security.tls_cert_file
    return server_tls(cfg).cert


def server_context(cfg: Settings) -> ssl.SSLContext:
    """A server-side context (standard-library servers) refusing anything below TLS 1.2."""
    files = server_tls(cfg)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_VERSION
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


def client_context(cfg: Settings) -> ssl.SSLContext:
    """A client context that verifies the services' certificate and host name (TLS 1.2+)."""
    ctx = ssl.create_default_context(cafile=str(ca_file(cfg)))
    ctx.minimum_version = MIN_VERSION
    return ctx


def host_names(cfg: Settings) -> list[str]:
    """Names and addresses the self-signed certificate covers."""
    # The services' own bind addresses, when their settings are there (serve.host,
    # sql_endpoint.host and spark_connect.host).
    served = [
        str(getattr(getattr(cfg, section, None), "host", "") or "")
        for section in ("serve", "sql_endpoint", "spark_connect")
    ]
    names = ["localhost", "127.0.0.1", "::1", *served, *cfg.security.tls_hostnames]
    unique: list[str] = []
    for name in names:
        if name and name not in ("0.0.0.0", "::") and name not in unique:  # noqa: S104
            unique.append(name)
    return unique


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (where plain text may be
    allowed: nothing on the network can read it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- self-signed ------------------------------------------------------------------------------


def _self_signed(cfg: Settings) -> TlsFiles:
    assert cfg.security.secrets_dir is not None
    folder = cfg.security.secrets_dir / "tls"
    files = TlsFiles(folder / "server.crt", folder / "server.key")
    names = host_names(cfg)
    if files.cert.exists() and files.key.exists():
        _check_key_mode(files.key)
        if _still_good(files.cert, names):
            return files
        logger.info("self-signed TLS certificate %s expires or misses a host name", files.cert)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(key, names)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written beside and renamed over: a reader never sees half a file or a key that
        # does not match the certificate for longer than the two renames.
        tmp_key = files.key.with_suffix(".key.tmp")
        tmp_key.unlink(missing_ok=True)
        fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_pem)
        tmp_cert = files.cert.with_suffix(".crt.tmp")
        tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp_key, files.key)
        os.replace(tmp_cert, files.cert)
    except OSError as exc:
        raise error(ErrorCode.TLS_UNAVAILABLE, path=str(folder), reason=type(exc).__name__) from exc
    logger.info("generated a self-signed TLS certificate %s for %s", files.cert, ", ".join(names))
    return files


def _certificate(key: ec.EllipticCurvePrivateKey, names: list[str]) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clinical-lakehouse (self-signed)"),
        ]
    )
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _still_good(cert_path: Path, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    covered = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE
    return fresh and wanted <= covered


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _check_key_mode(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise error(ErrorCode.TLS_UNAVAILABLE, path=str(path), reason=type(exc).__name__) from exc
    if mode & 0o077:
        raise error(
            ErrorCode.TLS_UNAVAILABLE,
            path=str(path),
            reason="the private key is readable by group or others (must be 0600)",
        )


def _check_pair(files: TlsFiles) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise error(
            ErrorCode.TLS_UNAVAILABLE,
            path=str(files.cert),
            reason=f"certificate and key do not load as a pair ({type(exc).__name__})",
        ) from exc
