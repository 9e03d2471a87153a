"""Conformance on public samples: every HL7 v2 message and DICOM file of ../shared/refdata
lands or is quarantined with a code; HL7 message counts agree with python-hl7."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from jobs import ingest
from lakehouse.sources.dicom import parse_instance
from tests.integration.bronze.conftest import Landing

pytestmark = [pytest.mark.spark, pytest.mark.refdata]

#: python-hl7 refuses these (segments before MSH, a second BHS or FHS): nothing of them lands.
BAD = {
    "sample_bad_batch.hl7": {"HL7_NO_MSH": 1},
    "sample_bad_batch1.hl7": {"HL7_BAD_ENVELOPE": 1, "HL7_NO_MSH": 1},
    "sample_bad_file.hl7": {"HL7_NO_MSH": 1},
    "sample_bad_file1.hl7": {"HL7_BAD_ENVELOPE": 1, "HL7_NO_MSH": 1},
    "sample_bad_file2.hl7": {"HL7_BAD_ENVELOPE": 1, "HL7_NO_MSH": 1},
    "sample_bad_file3.hl7": {"HL7_NO_MSH": 1},
    # MSH-2 is '^~\\&' (the escape character twice): the delimiters are ambiguous.
    "sample_unix.hl7": {"HL7_BAD_ENCODING_CHARS": 1},
    "sample_win.hl7": {"HL7_BAD_ENCODING_CHARS": 1},
}


def python_hl7_count(raw: bytes) -> int:
    """Messages python-hl7 finds in a file (the oracle); -1 when it refuses the file."""
    import hl7

    t = raw.decode("utf-8", "replace").lstrip("\ufeff")
    t = t.replace("\r\n", "\r").replace("\n", "\r").strip("\x0b\x1c\r")
    try:
        if t.startswith("FHS"):
            return sum(len(b) for b in hl7.parse_file(t))
        if t.startswith("BHS") or re.search(r"\r(BHS|BTS)", t):
            return len(hl7.parse_batch(t))
        return len(hl7.split_file(t))
    except hl7.ParseException:
        return -1


def test_refdata_hl7_and_dicom(landing: Landing, refdata: Path) -> None:
    hl7_files = sorted((refdata / "hl7v2").rglob("*.hl7"))
    dcm_files = sorted((refdata / "dicom").rglob("*.dcm"))
    assert len(hl7_files) >= 40
    assert len(dcm_files) >= 80
    for f in hl7_files:
        landing.write("lis", "REF", f"{f.parent.name}__{f.name}", f.read_bytes())
    for i, f in enumerate(dcm_files):
        dest = landing.root / "pacs" / "REF" / f"{i:03d}_{f.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    ingest_cfg = landing.cfg.ingest.model_copy(update={"sources": ["lis", "pacs"]})
    cfg = landing.cfg.model_copy(update={"ingest": ingest_cfg})

    report = ingest.run(landing.spark, cfg)

    lis, pacs = report.source("lis"), report.source("pacs")
    assert lis.records_seen == lis.records_landed + lis.records_quarantined
    # Some samples are byte-identical copies in the upstream repositories: duplicates.
    manifest = {
        r["file_path"].rsplit("/", 1)[-1]: r for r in landing.rows("ops.landing_files").collect()
    }
    assert lis.files_landed + lis.files_quarantined + lis.files_duplicate == len(hl7_files)
    for f in hl7_files:
        row = manifest[f"{f.parent.name}__{f.name}"]
        if row["status"] == "duplicate":
            continue
        expected = python_hl7_count(f.read_bytes())
        bad = BAD.get(f.name)
        if bad is None:
            assert (row["records_landed"], row["records_quarantined"]) == (expected, 0), f.name
        else:
            assert row["records_landed"] == 0, f.name
            assert row["records_quarantined"] == sum(bad.values()), f.name
    codes = landing.codes("lis")
    unique_bad = {n: c for n, c in BAD.items()}
    want: dict[str, int] = {}
    for _name, bad in unique_bad.items():
        for code, n in bad.items():
            want[code] = want.get(code, 0) + n
    assert codes == want
    fields = {
        r["file_path"].rsplit("__", 1)[-1]: r
        for r in landing.rows("bronze.lis_hl7v2_messages").collect()
    }
    assert fields["single_record.hl7"]["message_type"] == "ADT^A03^ADT_A03"
    assert fields["single_record.hl7"]["version_id"] == "2.4"
    assert fields["test_parser_L55_5edc2788.hl7"]["encoding_characters"] == "^~\\&#"

    # DICOM: the Spark run agrees with the parser run in plain Python on every file.
    expected_bad = sum(
        1 for f in dcm_files if "error_name" in next(iter(parse_instance(f.read_bytes(), "")))
    )
    assert pacs.files_seen == len(dcm_files)
    assert pacs.records_quarantined == expected_bad
    assert pacs.records_landed + pacs.records_quarantined + pacs.files_duplicate == len(dcm_files)
    quarantined = {
        r["file_path"].rsplit("/", 1)[-1].split("_", 1)[-1]: r["error_name"]
        for r in landing.rows("bronze.quarantine").where("source_system = 'pacs'").collect()
    }
    assert quarantined["MR_truncated.dcm"] == "DICOM_UNREADABLE"
    assert quarantined["rtplan_truncated.dcm"] == "DICOM_UNREADABLE"
    inst = {
        r["file_path"].rsplit("/", 1)[-1].split("_", 1)[-1]: r
        for r in landing.rows("bronze.pacs_dicom_instances").collect()
    }
    assert (
        inst["chrX2.dcm"]["patient_name"] == "Wang^XiaoDong=王^小东"
    )  # pydicom drops the empty 3rd group
    assert inst["chrX2.dcm"]["specific_character_set"] == "GB18030"
    ct = inst["CT_small.dcm"]
    assert ct["has_pixel_data"]
    assert ct["pixel_data_ref"] == ct["file_path"]
    assert ct["modality"] == "CT"
    assert ct["tags"]["0008,0060 Modality"] == "CT"
