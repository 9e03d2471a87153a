"""The shell of every job's ``main``: settings, logging, and a catalogued exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lakehouse.errors import LakehouseError
from lakehouse.logging import configure_logging
from lakehouse.settings import Settings, load_settings


def run_entrypoint(body: Callable[[Settings], object]) -> int:
    """Build settings once, run ``body`` and print what it returns.

    A :class:`LakehouseError` becomes one line on stderr and its code's exit status.
    """
    try:
        cfg = load_settings()
        configure_logging(cfg.log_level)
        result = body(cfg)
    except LakehouseError as exc:
        print(f"error {exc}", file=sys.stderr)
        return exc.code.exit_status
    if result is not None:
        print(result)
    return 0
