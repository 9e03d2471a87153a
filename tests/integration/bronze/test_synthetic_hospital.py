"""Acceptance on the synthetic hospital: every delivered file and record is accounted for,
and landed + quarantined agrees with the truth manifest's counts and injected defects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs import ingest
from tests.integration.bronze.conftest import Landing

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_synthetic_hospital_lands_as_its_truth_says(landing: Landing, tmp_path: Path) -> None:
    import pandas as pd

    from lakehouse.synthetic.dirt import DirtRates
    from lakehouse.synthetic.hospital import HospitalConfig, generate

    out = tmp_path / "synth"
    rates = DirtRates(
        duplicate_file=0.1, truncated_file=0.1, wrong_encoding=0.1, malformed_message=0.05
    )
    generate(out, HospitalConfig(patients=30, sites=3, seed=7, chunk_size=10, dirt=rates))
    files = pd.read_parquet(out / "truth" / "files.parquet")
    defects = pd.read_parquet(out / "truth" / "defects.parquet")
    ingest_cfg = landing.cfg.ingest.model_copy(update={"landing_root": out / "landing"})
    cfg = landing.cfg.model_copy(update={"ingest": ingest_cfg})

    report = ingest.run(landing.spark, cfg)

    for s in report.sources:
        assert s.records_seen == s.records_landed + s.records_quarantined
    prefix = "file:" + str(out) + "/"
    manifest: dict[str, Any] = {
        r["file_path"][len(prefix) :]: r
        for r in landing.spark.table("ops.landing_files")
        .where(f"file_path like '{prefix}%'")
        .collect()
    }
    assert set(manifest) == set(files["path"])  # every delivered file is in the manifest
    quarantine = landing.spark.table("bronze.quarantine").where(f"file_path like '{prefix}%'")
    codes_by_file: dict[str, set[str]] = {}
    for r in quarantine.select("file_path", "error_name").collect():
        codes_by_file.setdefault(r["file_path"][len(prefix) :], set()).add(r["error_name"])

    # A message that lost its MSH inside a batch is cut off its predecessor (its PID or EVN
    # opens another message): one HL7_NO_MSH record, the batch's other messages land, and
    # the BTS count agrees (no finding).
    lost_msh = defects[defects["detail"] == "MSH segment missing"].groupby("file").size()
    lis = report.source("lis")
    assert lis.findings_quarantined == 0
    # A truncated file physically lost its tail: fewer records than the truth meant to send.
    truncated = set(defects[defects["defect_code"] == "TRUNCATED_FILE"]["file"])
    for row in files.itertuples():
        got = manifest[row.path]
        if row.duplicate_of is not None:
            assert got["status"] == "duplicate", row.path
            continue
        assert got["status"] != "duplicate", row.path
        expected = row.records
        if row.path in truncated:
            assert got["records_landed"] + got["records_quarantined"] <= expected, row.path
            continue
        if row.path in lost_msh:
            assert "HL7_NO_MSH" in codes_by_file[row.path], row.path
            if "ENCODING_MISMATCH" not in codes_by_file[row.path]:
                # the batch is not lost whole: its other messages land
                landed = expected - int(lost_msh[row.path])
                assert got["records_landed"] >= min(landed, 1), row.path
        assert got["records_landed"] + got["records_quarantined"] == expected, row.path
    assert not any("HL7_BAD_ENVELOPE" in c for c in codes_by_file.values())

    for d in defects.itertuples():
        if d.file not in manifest or manifest[d.file]["status"] == "duplicate":
            continue
        codes = codes_by_file.get(d.file, set())
        if d.defect_code == "WRONG_ENCODING":
            assert codes == {"ENCODING_MISMATCH"} or "ENCODING_MISMATCH" in codes, d.file
            assert manifest[d.file]["records_landed"] == 0, d.file
        elif d.defect_code == "TRUNCATED_FILE" and d.source in ("emr", "pacs", "fhir"):
            assert codes, d.file  # a cut XML, DICOM or NDJSON file never lands whole
        elif d.defect_code == "MALFORMED_MESSAGE" and d.detail == "MSH segment missing":
            assert codes & {"HL7_NO_MSH", "HL7_BAD_ENVELOPE", "ENCODING_MISMATCH"}, d.file
