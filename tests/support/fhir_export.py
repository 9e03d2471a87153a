"""A real ``lakehouse serve`` process, a Bulk ``$export`` through its HTTPS API, and the
export's NDJSON files landed where the FHIR source reads them (``<root>/fhir/<institution>/``).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp

from lakehouse.governance.tls import client_context
from lakehouse.settings import Settings
from tests.support.processes import free_port, log_tail, start_serve

REPO = Path(__file__).resolve().parents[2]
#: Identifier.system of every exported resource's source id (docs/fhir.md, Mappings):
#: ``urn:lakehouse:<institution>:<source system>:<kind>`` (ImagingStudy: its accession,
#: ``urn:lakehouse:<institution>:accession``).
_PREFIX = "urn:lakehouse:"


@dataclass(frozen=True)
class Served:
    """A running ``lakehouse serve``: its base URL and the TLS context that trusts it."""

    url: str
    verify: ssl.SSLContext
    log: Path


@contextmanager
def served(
    env: dict[str, str], cfg: Settings, log: Path, *, timeout_s: float = 600
) -> Iterator[Served]:
    """``lakehouse serve`` on a free port with ``env`` (``cfg``: the same settings, for the
    certificate it generates); stopped (SIGTERM: the audit journal is shipped) on exit."""
    port = free_port()
    verify: ssl.SSLContext | None = None
    assert cfg.security.secrets_dir is not None
    cert = cfg.security.secrets_dir / "tls" / "server.crt"
    process = start_serve(env, port, log)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise AssertionError(f"lakehouse serve exited:\n{log_tail(log)}")
            if verify is None and cert.exists():  # the self-signed one the service writes
                time.sleep(1)
                verify = client_context(cfg)
            try:
                if verify and httpx.get(f"{url}/api/health", verify=verify, timeout=5).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                tail = log_tail(log)
                raise AssertionError(f"lakehouse serve not healthy in {timeout_s} s:\n{tail}")
            time.sleep(1)
        assert verify is not None
        yield Served(url, verify, log)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def bulk_export(
    service: Served,
    username: str,
    password: str,
    folder: Path,
    *,
    types: str | None = None,
    totp_secret: str | None = None,
    timeout_s: float = 1200,
) -> list[dict[str, Any]]:
    """Sign in (with the TOTP of ``totp_secret`` for a privileged role), run a system-level
    ``$export`` and download its files into ``folder``; returns the manifest's ``output``."""
    folder.mkdir(parents=True, exist_ok=True)
    credentials = {"username": username, "password": password}
    if totp_secret:
        credentials["totp"] = pyotp.TOTP(totp_secret).now()
    with httpx.Client(base_url=service.url, verify=service.verify, timeout=120) as c:
        login = c.post("/api/login", json=credentials)
        assert login.status_code == 200, login.text
        c.headers["Authorization"] = f"Bearer {login.json()['token']}"
        params = {"_type": types} if types else {}
        r = c.get("/fhir/r4/$export", params=params, headers={"Prefer": "respond-async"})
        assert r.status_code == 202, r.text
        status = r.headers["content-location"]
        deadline = time.monotonic() + timeout_s
        while (r := c.get(status)).status_code == 202:
            assert time.monotonic() < deadline, f"export still running: {r.headers}"
            time.sleep(2)
        assert r.status_code == 200, r.text
        outputs: list[dict[str, Any]] = r.json()["output"]
        for out in outputs:
            got = c.get(out["url"])
            assert got.status_code == 200, got.text
            assert got.headers["content-type"].startswith("application/fhir+ndjson")
            (folder / out["url"].rsplit("/", 1)[1]).write_bytes(got.content)
    return outputs


def institution_of(resource: dict[str, Any]) -> str:
    """The institution an exported resource belongs to: the ``<institution>`` of its
    ``urn:lakehouse:<institution>:...`` identifier (every exported type carries one)."""
    for ident in resource.get("identifier", []):
        system = ident.get("system", "")
        if system.startswith(_PREFIX):
            return str(system[len(_PREFIX) :].split(":", 1)[0])
    raise AssertionError(f"{resource['resourceType']} without a urn:lakehouse identifier")


def land_export(folder: Path, landing_root: Path) -> dict[str, dict[str, int]]:
    """Copy each exported NDJSON file's lines to ``<landing_root>/fhir/<institution>/`` (the
    FHIR source's landing layout, docs/synthetic-hospital.md), split by the institution each
    resource carries; returns institution -> resourceType -> lines."""
    counts: dict[str, dict[str, int]] = {}
    for path in sorted(folder.glob("*.ndjson")):
        by_site: dict[str, list[str]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            resource = json.loads(line)
            site = institution_of(resource)
            by_site.setdefault(site, []).append(line)
            per = counts.setdefault(site, {})
            per[resource["resourceType"]] = per.get(resource["resourceType"], 0) + 1
        for site, lines in by_site.items():
            target = landing_root / "fhir" / site / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts
