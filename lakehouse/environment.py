"""What the machine must provide before Spark can start: Java 17+, the jar cache, storage.

Used by ``lakehouse doctor`` to report and by :func:`lakehouse.spark.build_spark` to fail
early with a catalogued code instead of a Py4J stack trace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata, resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings, environment_path

JAVA_REQUIRED = 17
#: Spark binary line and Scala version of the Delta artifact (docs/adr/0001).
SPARK_BINARY = "4.2"
SCALA_BINARY = "2.13"


@dataclass(frozen=True)
class JavaRuntime:
    """A Java runtime found on this machine."""

    executable: Path
    major: int


def find_java(cfg: Settings) -> JavaRuntime:
    """Locate ``java`` (JAVA_HOME first, then PATH) and check its major version."""
    if cfg.java_home is not None:
        candidate: str | None = str(cfg.java_home / "bin" / "java")
        if not Path(candidate or "").exists():
            raise error(
                ErrorCode.JAVA_MISSING,
                detail=f"JAVA_HOME={cfg.java_home} has no bin/java",
                required=f"{JAVA_REQUIRED}+",
            )
    else:
        candidate = shutil.which("java", path=environment_path())
        if candidate is None:
            raise error(
                ErrorCode.JAVA_MISSING,
                detail="JAVA_HOME is not set and `java` is not on PATH",
                required=f"{JAVA_REQUIRED}+",
            )
    assert candidate is not None
    try:
        probe = subprocess.run(
            [candidate, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(
            ErrorCode.JAVA_MISSING,
            detail=f"{candidate} -version failed: {type(exc).__name__}",
            required=f"{JAVA_REQUIRED}+",
        ) from exc
    major = parse_java_major(probe.stderr + probe.stdout)
    if major is None:
        raise error(
            ErrorCode.JAVA_MISSING,
            detail=f"{candidate} -version printed no version",
            required=f"{JAVA_REQUIRED}+",
        )
    if major < JAVA_REQUIRED:
        raise error(
            ErrorCode.JAVA_VERSION_UNSUPPORTED,
            found=major,
            path=candidate,
            version=pyspark_version(),
            required=f"{JAVA_REQUIRED}+",
        )
    return JavaRuntime(Path(candidate), major)


def parse_java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output (``1.8.0_392`` -> 8, ``17.0.15`` -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    first = int(match.group(1))
    if first == 1 and match.group(2):
        return int(match.group(2))
    return first


def pyspark_version() -> str:
    return metadata.version("pyspark")


def delta_version() -> str:
    return metadata.version("delta-spark")


def required_jars() -> list[str]:
    """File names the jar cache must hold: the Delta jars matching the installed delta-spark."""
    v = delta_version()
    return [f"delta-spark_{SPARK_BINARY}_{SCALA_BINARY}-{v}.jar", f"delta-storage-{v}.jar"]


def find_jars(cfg: Settings) -> list[Path]:
    """All jars of the cache, checked to include :func:`required_jars`."""
    folder = cfg.spark.jars_dir
    present = {p.name: p for p in folder.glob("*.jar")} if folder.is_dir() else {}
    missing = [name for name in required_jars() if name not in present]
    if missing:
        raise error(ErrorCode.JARS_MISSING, path=folder, names=", ".join(missing))
    return sorted(present.values())


def check_storage(cfg: Settings) -> Path:
    """Make sure the local data root exists and is writable."""
    root = cfg.data_dir
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise error(ErrorCode.STORAGE_UNAVAILABLE, path=root, reason=exc.strerror) from exc
    return root


def use_hospital_zone(zone: str) -> str:
    """Make ``zone`` this Python process's local time zone; returns the ``TZ`` value used.

    PySpark turns a ``TIMESTAMP`` into a naive ``datetime`` in the *process's* local zone
    (``datetime.fromtimestamp``) and reads a naive ``datetime`` back the same way, while
    Spark SQL renders and parses in ``spark.sql.session.timeZone``. A driver on a UTC host
    would show an 11:11 Shanghai admission as 03:11. So the driver (and the Python workers
    and JVM it starts, which inherit ``TZ``) run in the hospital's zone. The C library reads
    the system time zone database; where that lacks the zone, the ``tzdata`` package's file
    is used (``TZ=:/path``). The result is checked against :mod:`zoneinfo` at three instants
    (now, January, July) so a silent fallback to UTC is caught (``LH-ENV-008``).
    """
    try:
        target = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise error(ErrorCode.TIMEZONE_UNAVAILABLE, name=zone, reason="unknown zone") from exc
    candidates = [zone]
    try:
        packaged = resources.files("tzdata") / "zoneinfo" / zone
        if packaged.is_file():
            candidates.append(f":{packaged}")
    except ModuleNotFoundError:
        pass
    previous = os.environ.get("TZ")
    for value in candidates:
        os.environ["TZ"] = value
        time.tzset()
        if _local_zone_is(target):
            return value
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()
    raise error(
        ErrorCode.TIMEZONE_UNAVAILABLE,
        name=zone,
        reason="the C library has no data for it (install tzdata)",
    )


def _local_zone_is(target: ZoneInfo) -> bool:
    year = datetime.now().year
    instants = [time.time()] + [
        datetime(year, month, 15, 12, tzinfo=target).timestamp() for month in (1, 7)
    ]
    for t in instants:
        offset = datetime.fromtimestamp(t, target).utcoffset()
        if offset is None or time.localtime(t).tm_gmtoff != int(offset.total_seconds()):
            return False
    return True


def pinned_versions() -> dict[str, str]:
    """The exact pins (``name==version``) of this distribution's own requirements."""
    pins: dict[str, str] = {}
    for req in metadata.requires("clinical-lakehouse") or []:
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*==\s*([^;\s]+)\s*$", req)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def check_python_packages() -> None:
    """The installed Spark/Delta Python packages must be the ones pyproject.toml pins."""
    for name, version in pinned_versions().items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise error(ErrorCode.DEPENDENCY_MISSING, name=name, detail="not installed") from None
        if found != version:
            raise error(
                ErrorCode.DEPENDENCY_MISSING,
                name=name,
                detail=f"{found} installed, {version} pinned",
            )


__all__ = [
    "JAVA_REQUIRED",
    "JavaRuntime",
    "check_python_packages",
    "check_storage",
    "find_jars",
    "find_java",
    "parse_java_major",
    "required_jars",
    "use_hospital_zone",
]
