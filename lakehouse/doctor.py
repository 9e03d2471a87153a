"""``lakehouse doctor``: check what the lakehouse needs, say exactly what is wrong.

Checks run in dependency order (Python packages, Java, jars, storage, time zone, then the
catalog through a real Spark session); a check whose prerequisite failed is skipped, not
failed twice. The process exits with the exit status of the first failing code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lakehouse.environment import (
    check_python_packages,
    check_storage,
    find_jars,
    find_java,
    use_hospital_zone,
)
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings


@dataclass(frozen=True)
class Check:
    """Outcome of one check."""

    name: str
    status: str  # ok | failed | skipped
    detail: str
    error: LakehouseError | None = None


def _python(cfg: Settings) -> str:
    check_python_packages()
    from lakehouse.environment import delta_version, pyspark_version

    return f"pyspark {pyspark_version()}, delta-spark {delta_version()}"


def _java(cfg: Settings) -> str:
    java = find_java(cfg)
    return f"Java {java.major} at {java.executable}"


def _jars(cfg: Settings) -> str:
    jars = find_jars(cfg)
    return f"{len(jars)} jars in {cfg.spark.jars_dir}"


def _storage(cfg: Settings) -> str:
    return f"{check_storage(cfg)} writable; warehouse {cfg.warehouse}"


def _timezone(cfg: Settings) -> str:
    value = use_hospital_zone(cfg.timezone)
    source = "system database" if value == cfg.timezone else "tzdata package"
    return f"{cfg.timezone} is the process's local zone ({source})"


def _catalog(cfg: Settings) -> str:
    from lakehouse.spark import build_spark, check_catalog

    spark = build_spark(cfg)
    schemas = check_catalog(spark)
    return f"{cfg.metastore.kind} metastore answers; schemas: {', '.join(schemas)}"


CHECKS: list[tuple[str, Callable[[Settings], str]]] = [
    ("python packages", _python),
    ("java", _java),
    ("jars", _jars),
    ("storage", _storage),
    ("time zone", _timezone),
    ("catalog", _catalog),
]


def run_checks(cfg: Settings, *, with_spark: bool = True) -> list[Check]:
    """Run every check; later ones are skipped once one has failed."""
    results: list[Check] = []
    failed = False
    for name, check in CHECKS:
        if name == "catalog" and not with_spark:
            results.append(Check(name, "skipped", "not asked for (--no-spark)"))
            continue
        if failed:
            results.append(Check(name, "skipped", "an earlier check failed"))
            continue
        try:
            results.append(Check(name, "ok", check(cfg)))
        except LakehouseError as exc:
            failed = True
            results.append(Check(name, "failed", str(exc), exc))
    return results


def exit_status(results: list[Check]) -> int:
    """0 when every check passed, else the exit status of the first failing code."""
    for r in results:
        if r.error is not None:
            return r.error.code.exit_status
    return 0
