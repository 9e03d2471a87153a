"""Java, jar and storage checks, and `lakehouse doctor` on a machine that lacks them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.environment import (
    check_storage,
    find_jars,
    find_java,
    parse_java_major,
    pinned_versions,
    required_jars,
)
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings

REPO = Path(__file__).resolve().parents[2]
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_java_home_without_java_is_named(tmp_path: Path) -> None:
    with pytest.raises(LakehouseError) as info:
        find_java(Settings(home=tmp_path, java_home=tmp_path))
    assert info.value.code is ErrorCode.JAVA_MISSING


def test_old_java_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(LakehouseError) as info:
        find_java(Settings(home=tmp_path, java_home=tmp_path))
    assert info.value.code is ErrorCode.JAVA_VERSION_UNSUPPORTED


def test_missing_jars_are_listed(tmp_path: Path) -> None:
    with pytest.raises(LakehouseError) as info:
        find_jars(Settings(home=tmp_path))
    assert info.value.code is ErrorCode.JARS_MISSING
    assert required_jars()[0] in info.value.render()


def test_unwritable_storage_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(LakehouseError) as info:
        check_storage(Settings(home=tmp_path, data_dir=blocker / "data"))
    assert info.value.code is ErrorCode.STORAGE_UNAVAILABLE


def test_pins_come_from_the_distribution() -> None:
    pins = pinned_versions()
    assert pins["pyspark"].startswith("4.2")
    assert "delta-spark" in pins


def _doctor(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LAKEHOUSE), "doctor", "--no-spark"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _clean_env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    keep.pop("JAVA_HOME", None)
    keep["LAKEHOUSE_HOME"] = str(tmp_path)
    return keep


def test_doctor_without_java_names_it_and_exits_nonzero(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env["PATH"] = str(tmp_path / "empty-bin")  # no java anywhere
    result = _doctor(env, tmp_path)
    assert result.returncode == ErrorCode.JAVA_MISSING.exit_status
    assert "[FAIL] java" in result.stdout
    assert "LH-ENV-001" in result.stdout
    assert "OpenJDK 17" in result.stdout


def test_doctor_without_jars_names_them_and_exits_nonzero(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env["LAKEHOUSE_SPARK__JARS_DIR"] = str(tmp_path / "no-jars")
    result = _doctor(env, tmp_path)
    assert result.returncode == ErrorCode.JARS_MISSING.exit_status
    assert "[ok  ] java" in result.stdout
    assert "LH-ENV-003" in result.stdout
    assert required_jars()[0] in result.stdout
    assert "make jars" in result.stdout


def test_doctor_passes_without_spark_on_this_machine(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env["LAKEHOUSE_SPARK__JARS_DIR"] = str(REPO / ".cache" / "jars")
    result = _doctor(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


_ZONE_PROBE = """
import datetime, os, sys
from lakehouse.environment import use_hospital_zone
used = use_hospital_zone(sys.argv[1])
# 2026-01-01T03:11:00Z: what PySpark's collect() would turn into a naive datetime
print(used.startswith(":"), datetime.datetime.fromtimestamp(1767237060).isoformat())
"""


def _zone_probe(zone: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _ZONE_PROBE, zone],
        env={**env, "TZ": "UTC"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hospital_zone_makes_naive_datetimes_hospital_wall_clock() -> None:
    result = _zone_probe("Asia/Shanghai", dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "2026-01-01T11:11:00"]


def test_hospital_zone_falls_back_to_the_tzdata_package(tmp_path: Path) -> None:
    # glibc finds zone names under TZDIR: an empty one is a machine without tzdata.
    result = _zone_probe("Asia/Shanghai", {**os.environ, "TZDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "2026-01-01T11:11:00"]


def test_unknown_hospital_zone_is_catalogued() -> None:
    result = _zone_probe("Mars/Olympus_Mons", dict(os.environ))
    assert result.returncode != 0
    assert "LH-ENV-008" in result.stderr
