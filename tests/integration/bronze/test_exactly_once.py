"""Exactly once: a run that dies after its bronze commits and before the manifest commit,
rerun, leaves exactly the records of one clean run (in process, and by SIGKILL: slow)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs import ingest
from lakehouse.sources.files import FileKey
from tests.integration.bronze.conftest import Landing, die_before_manifest

pytestmark = pytest.mark.spark


def hl7_file(tag: str, n: int, bad: int) -> bytes:
    good = [
        f"MSH|^~\\&|LIS|H|EMR|H|20240101||ORU^R01|{tag}-{i}|P|2.5\rOBX|1|NM|GLU||{i}\r"
        for i in range(n)
    ]
    broken = [f"PID|{tag}|{i}\r" for i in range(bad)]  # no MSH: quarantined
    # Each broken batch's trailer counts its one (broken) record, as a sender does: no
    # trailer finding (docs/ingest-hl7v2.md), so the quarantine holds the records only.
    return ("BHS|^~\\&\r" + "".join(good) + "BTS|" + str(n) + "\r").encode() + "".join(
        "BHS|^~\\&\r" + b + "BTS|1\r" for b in broken
    ).encode()


def test_killed_before_manifest_then_rerun_lands_once(
    landing: Landing, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(3):
        landing.write("lis", "H001", f"f{k}.hl7", hl7_file(f"{unique}-{k}", 4, 1))
    die_before_manifest(monkeypatch)
    with pytest.raises(RuntimeError):
        ingest.run(landing.spark, landing.cfg, source="lis")
    msgs = landing.rows("bronze.lis_hl7v2_messages")
    assert msgs.count() == 12  # the bronze commit happened...
    assert landing.rows("ops.landing_files").count() == 0  # ...the manifest did not

    monkeypatch.undo()
    rerun_report = ingest.run(landing.spark, landing.cfg, source="lis")
    rerun = rerun_report.source("lis")
    assert (rerun.files_landed, rerun.records_landed, rerun.records_quarantined) == (3, 12, 3)
    landed = msgs.agg(  # one Spark job for the three checks of the table
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("file_sha256", "record_index").alias("records"),
        F.collect_set("ingest_run_id").alias("run_ids"),
    ).first()
    assert landed is not None
    assert (landed["rows"], landed["records"]) == (12, 12)
    # Insert-only landing: replayed records keep the lineage of the run that landed them.
    assert len(landed["run_ids"]) == 1
    assert rerun_report.run_id not in landed["run_ids"]
    assert landing.rows("bronze.quarantine").count() == 3
    assert landing.rows("ops.landing_files").where("status = 'landed'").count() == 3


def _delta_versions(table_dir: Path) -> int:
    log = table_dir / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_lands_once(spark: Any, tmp_path: Path, unique: str) -> None:
    """A real driver process is SIGKILLed after bronze commits, before the manifest."""
    landing = tmp_path / "landing"
    for k in range(20):
        path = landing / "lis" / "H001" / f"f{k}.hl7"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hl7_file(f"{unique}-{k}", 50, 20))
    data = tmp_path / "data"
    env = {
        **os.environ,
        "LAKEHOUSE_DATA_DIR": str(data),
        "LAKEHOUSE_INGEST__LANDING_ROOT": str(landing),
        "LAKEHOUSE_SPARK__MASTER": "local[2]",
        "LAKEHOUSE_SPARK__SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_SPARK__UI_ENABLED": "false",
        "PYSPARK_PYTHON": sys.executable,
    }
    cmd = [sys.executable, "-m", "jobs.ingest", "--source", "lis"]
    bronze = data / "warehouse" / "bronze.db" / "lis_hl7v2_messages"
    manifest = data / "warehouse" / "ops.db" / "landing_files"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _delta_versions(bronze) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    manifest_versions = _delta_versions(manifest)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if manifest_versions > 1:
        pytest.skip("the run finished its manifest before the kill landed")
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0

    msgs = spark.read.format("delta").load(str(bronze))
    assert msgs.count() == 20 * 50
    assert msgs.select("file_sha256", "record_index").distinct().count() == 20 * 50
    quarantine = spark.read.format("delta").load(
        str(data / "warehouse" / "bronze.db" / "quarantine")
    )
    assert quarantine.count() == 20 * 20
    files = spark.read.format("delta").load(str(manifest))
    assert files.where("status = 'landed'").count() == 20


def test_a_record_index_repeated_within_a_file_is_refused_before_any_commit(spark: Any) -> None:
    """Bronze MERGEs take (file_sha256, record_index) as unique without a per-key window:
    the run's one counting action counts each file's rows beyond its distinct indexes, and
    a run with any refuses the source (LH-TBL-004) before its MERGEs."""
    keys = [
        FileKey("f1", "a" * 64, "H001", 9, None),
        FileKey("f2", "b" * 64, "H001", 9, None),
    ]
    modified = {"f1": 0, "f2": 0}
    records = spark.createDataFrame(
        [
            ("f1", "a" * 64, 0, None, False),
            ("f1", "a" * 64, 1, "HL7_NO_MSH", False),
            ("f1", "a" * 64, -1, "HL7_TRAILER_COUNT_MISMATCH", True),  # a finding: own index
            ("f2", "b" * 64, 0, None, False),
            ("f2", "b" * 64, 0, None, False),  # the clash
        ],
        "file_path string, file_sha256 string, record_index long, error_name string, "
        "finding boolean",
    )
    report = ingest.SourceReport("lis")
    rows = ingest._manifest_rows(
        keys, ingest._file_counts(records), modified, "run-1", source="lis"
    )
    assert ingest._count(rows, report) == 1
    assert (report.records_landed, report.records_quarantined, report.findings_quarantined) == (
        3,
        1,
        1,
    )
    sound = records.distinct()  # f2's two rows are one record
    counts = ingest._file_counts(sound)
    assert (
        ingest._count(ingest._manifest_rows(keys, counts, modified, "run-1", source="lis"), report)
        == 0
    )
