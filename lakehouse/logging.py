"""Logging set-up for entrypoints: ids, counts, durations and codes; never patient data."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Libraries that are chatty at INFO and carry nothing an operator needs.
_QUIET = ("py4j", "urllib3", "asyncio", "filelock")


def silence_data_loggers() -> None:
    """Turn off PySpark's query-context loggers. On every failed query PySpark 4 logs Spark's
    message to stderr through its own handler, and the message can quote data values
    (``The value 'ZHANG San' of the type "STRING" cannot be cast ...``). Errors reach the
    caller as exceptions; services answer them with catalogued codes only."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once, for a command line or a service process."""
    root = logging.getLogger()
    if not any(getattr(h, "_lakehouse", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._lakehouse = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    silence_data_loggers()
