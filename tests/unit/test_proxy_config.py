"""Rendering of the nginx templates in infra/nginx/ (lakehouse.proxy; docs/adr/0029)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.proxy import PLACEHOLDER, render, upstream_servers

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "infra/nginx/lakehouse-assistant.conf.template"
VALUES = {
    "LISTEN": "127.0.0.1:8443",
    "SERVER_NAME": "assistant.hospital.example",
    "TLS_CERT": "/etc/ssl/assistant.crt",
    "TLS_KEY": "/etc/ssl/private/assistant.key",
    "UPSTREAM_SERVERS": upstream_servers(["10.0.0.11:8443", "10.0.0.12:8443"]),
    "UPSTREAM_BACKUPS": upstream_servers(["10.0.0.11:8443", "10.0.0.12:8443"], backup=True),
    "UPSTREAM_CA": "/etc/ssl/hospital-ca.pem",
    "UPSTREAM_TLS_NAME": "assistant.internal",
    "LOG_DIR": "/var/log/nginx",
}


def test_the_site_renders_with_every_replica_and_keeps_nginx_variables() -> None:
    text = render(SITE, VALUES)
    assert not PLACEHOLDER.search(text)
    assert text.count("server 10.0.0.11:8443 max_fails=2 fail_timeout=10s;") == 2
    # ... and once as a backup that is never marked down (the last live replica keeps serving)
    assert text.count("server 10.0.0.12:8443 backup max_fails=0;") == 1
    assert "$remote_addr" in text  # nginx variables pass through untouched
    assert "$upstream_addr" in text
    assert "proxy_next_upstream         error timeout http_502 http_504;" in text
    assert "non_idempotent" not in text.replace("(no `non_idempotent` below)", "")
    assert "$request_uri" not in text  # query strings (patient ids) never logged


def test_a_missing_value_is_refused_with_its_name() -> None:
    values = {k: v for k, v in VALUES.items() if k != "UPSTREAM_CA"}
    with pytest.raises(LakehouseError) as raised:
        render(SITE, values)
    assert raised.value.code is ErrorCode.PROXY_TEMPLATE_INCOMPLETE
    assert "UPSTREAM_CA" in str(raised.value)


@pytest.mark.parametrize("replicas", [[], ["10.0.0.1"], ["10.0.0.1:8443; server evil:1"]])
def test_replicas_must_be_host_and_port(replicas: list[str]) -> None:
    with pytest.raises(LakehouseError) as raised:
        upstream_servers(replicas)
    assert raised.value.code is ErrorCode.CONFIG_INVALID
