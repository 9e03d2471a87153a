"""nginx in front of the assistant's replicas: rendering its configuration (docs/adr/0029).

The configuration lives in ``infra/nginx/`` as templates with ``${NAME}`` placeholders
(upper-case names only, so nginx's own ``$variables`` pass through untouched; the same
files render with ``envsubst``). :func:`render` fills them and refuses a placeholder
that has no value (``LH-PRX-001``): a half-rendered file would start an nginx that proxies
to nowhere. :func:`upstream_servers` writes the ``server`` lines of the replicas, and
:func:`nginx_binary` finds nginx (``LH-PRX-002`` with how to install it when absent).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from lakehouse.errors import ErrorCode, error

#: ``${NAME}`` with an upper-case name: a template placeholder (nginx variables are lower case).
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
#: What a replica address may look like (host:port; a bracketed IPv6 host is allowed).
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")


def render(template: Path, values: Mapping[str, str]) -> str:
    """The text of ``template`` with every ``${NAME}`` replaced by ``values[NAME]``."""
    text = template.read_text(encoding="utf-8")
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise error(
            ErrorCode.PROXY_TEMPLATE_INCOMPLETE, file=str(template), names=", ".join(missing)
        )
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def upstream_servers(
    replicas: Sequence[str], *, max_fails: int = 2, fail_timeout_s: int = 10, backup: bool = False
) -> str:
    """The ``server`` lines of an upstream block, one per replica (``host:port``).

    ``backup``: the same replicas as backup servers that are never marked down
    (``max_fails=0``): nginx turns to them only when passive health has marked every
    replica down, so the last live replica keeps serving after a few transient errors
    instead of nginx answering 502 "no live upstreams" to everyone for ``fail_timeout``."""
    if not replicas:
        raise error(ErrorCode.CONFIG_INVALID, setting="replicas", reason="no replica given")
    for address in replicas:
        if not _ADDRESS.fullmatch(address):
            raise error(
                ErrorCode.CONFIG_INVALID, setting="replicas", reason="a replica is not host:port"
            )
    if backup:
        return "\n".join(f"    server {a} backup max_fails=0;" for a in replicas)
    return "\n".join(
        f"    server {a} max_fails={max_fails} fail_timeout={fail_timeout_s}s;" for a in replicas
    )


def nginx_binary() -> str:
    """The nginx executable on PATH (or Debian's /usr/sbin/nginx)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise error(ErrorCode.PROXY_NGINX_MISSING, name="nginx")
    return found
