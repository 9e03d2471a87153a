"""TLS of the HTTP services against a real HTTPS server (stdlib http.server + ssl) and httpx."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance import tls
from lakehouse.settings import Settings


def _cfg(tmp: Path, **security: object) -> Settings:
    return Settings(home=tmp, data_dir=tmp / "var", security=security)  # type: ignore[arg-type,call-arg]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return _cfg(tmp_path, tls_hostnames=["lakehouse.hospital.example"])


@pytest.fixture
def server(cfg: Settings) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    httpd.socket = tls.server_context(cfg).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_self_signed_files_are_generated_once_and_the_key_is_private(cfg: Settings) -> None:
    files = tls.server_tls(cfg)
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert files.cert.parent == cfg.security.secrets_dir / "tls"  # type: ignore[operator]
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "lakehouse.hospital.example"} <= set(san.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    before = files.cert.read_bytes()
    assert tls.server_tls(cfg) == files
    assert files.cert.read_bytes() == before
    assert tls.ca_file(cfg) == files.cert


def test_expired_or_renamed_certificates_are_regenerated(cfg: Settings, tmp_path: Path) -> None:
    files = tls.server_tls(cfg)
    old = files.cert.read_bytes()
    # An expired certificate (valid until yesterday) in place of the generated one.
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(files.key.read_bytes(), None)
    expired = tls._certificate(key, tls.host_names(cfg))  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .subject_name(expired.subject)
        .issuer_name(expired.issuer)
        .public_key(expired.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
        .not_valid_after(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    )
    for ext in expired.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    from cryptography.hazmat.primitives import hashes

    files.cert.write_bytes(
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]
    )
    renewed = tls.server_tls(cfg)
    fresh = x509.load_pem_x509_certificate(renewed.cert.read_bytes())
    assert fresh.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    assert renewed.cert.read_bytes() != old
    # A new host name in the settings: a certificate that covers it.
    wider = _cfg(tmp_path, tls_hostnames=["lakehouse.hospital.example", "lh2.hospital.example"])
    san = x509.load_pem_x509_certificate(tls.server_tls(wider).cert.read_bytes()).extensions
    names = san.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "lh2.hospital.example" in names.get_values_for_type(x509.DNSName)


def test_verified_https_succeeds_and_everything_else_fails(
    cfg: Settings, server: int, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{server}/"
    with httpx.Client(verify=tls.client_context(cfg)) as client:
        assert client.get(url).text == "hello"
    with httpx.Client(verify=tls.client_context(cfg)) as client:  # host name checked too
        assert client.get(f"https://localhost:{server}/").status_code == 200

    # Plain HTTP to the TLS port: no answer.
    with pytest.raises(httpx.HTTPError), httpx.Client() as client:
        client.get(f"http://127.0.0.1:{server}/")

    # A client that trusts another CA (another installation's self-signed certificate).
    other = _cfg(tmp_path / "other")
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=tls.client_context(other)) as c:
        c.get(url)
    # The system trust store does not know the self-signed certificate either.
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as client:
        client.get(url)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_below_1_2_is_refused_by_the_server(cfg: Settings, server: int) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.0/1.1 at all
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=old) as client:
        client.get(f"https://127.0.0.1:{server}/")
    ctx = tls.server_context(cfg)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_hospital_certificate_from_settings(cfg: Settings, tmp_path: Path) -> None:
    generated = tls.server_tls(cfg)  # stands in for the hospital's files
    hospital = _cfg(tmp_path / "h", tls_cert_file=generated.cert, tls_key_file=generated.key)
    assert tls.server_tls(hospital) == generated
    assert tls.ca_file(hospital) == generated.cert
    assert not (tmp_path / "h" / "var" / "secrets" / "tls").exists()  # nothing generated

    with pytest.raises(LakehouseError) as half:
        tls.server_tls(_cfg(tmp_path / "h", tls_cert_file=generated.cert))
    assert half.value.code is ErrorCode.TLS_UNAVAILABLE

    os.chmod(generated.key, 0o644)
    with pytest.raises(LakehouseError) as loose:
        tls.server_tls(hospital)
    assert loose.value.code is ErrorCode.TLS_UNAVAILABLE
    os.chmod(generated.key, 0o600)

    wrong = _cfg(tmp_path / "o")
    other = tls.server_tls(wrong)
    mismatch = _cfg(tmp_path / "h", tls_cert_file=generated.cert, tls_key_file=other.key)
    with pytest.raises(LakehouseError) as pair:
        tls.server_tls(mismatch)
    assert pair.value.code is ErrorCode.TLS_UNAVAILABLE
    assert "PRIVATE KEY" not in str(pair.value)
