"""HL7 v2 landing: splitting, MSH fields, every bad input quarantined with its code, reruns."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import ingest
from lakehouse.errors import ErrorCode, LakehouseError
from tests.integration.bronze.conftest import Landing

pytestmark = pytest.mark.spark


def msh(control: str, *, charset: str = "", fac: str = "HOSP", msg: str = "ORU^R01") -> str:
    fields = [
        "MSH",
        "^~\\&",
        "LIS",
        fac,
        "EMR",
        "HOSP",
        "20240102030405",
        "",
        msg,
        control,
        "P",
        "2.5",
        "",
        "",
        "",
        "",
        "",
        charset,
    ]
    return "|".join(fields)


def oru(control: str, sep: str = "\r", **kw: str) -> str:
    segs = [
        msh(control, **kw),
        "PID|1||MRN1^^^HOSP^MR||DOE^JANE",
        "OBR|1|||GLU",
        "OBX|1|NM|GLU^Glucose||5.6|mmol/L",
    ]
    return sep.join(segs) + sep


def test_lis_files_split_land_and_quarantine(landing: Landing, unique: str) -> None:
    u = unique
    batch = (
        "\ufeffFHS|^~\\&|LIS\r\nBHS|^~\\&|LIS\r\n"
        + oru(f"{u}-b1", "\r\n")
        + oru(f"{u}-b2", "\r\n")
        + "BTS|2\r\nFTS|1\r\n"
    ).encode()
    mllp = (
        b"\x0b" + oru(f"{u}-m1").encode() + b"\x1c\r" + b"\x0b" + oru(f"{u}-m2").encode()
    )  # second frame never closed: truncated
    unix = oru(f"{u}-lf", "\n").encode()
    orphan = b"BHS|^~\\&|LIS\rPID|1||X\rOBX|1|NM|A||1\rBTS|1\r"
    bad_enc = (oru(f"{u}-e").replace("^~\\&", "^~", 1)).encode()
    truncated = b"MSH|^~\\&|LIS|HOSP|EMR|HOSP|2024\r"
    zh = "PID|1||MRN2^^^HOSP^MR||张^三\r"
    gb_as_utf8 = (msh(f"{u}-g1", charset="UNICODE UTF-8") + "\r" + zh).encode("gb18030")
    gb_ok = (msh(f"{u}-g2", charset="GB 18030-2000", fac="检验科") + "\r" + zh).encode("gb18030")
    bad_count = ("BHS|^~\\&|LIS\r" + oru(f"{u}-c1") + "BTS|3\r").encode()
    no_fields = (msh(f"{u}-n").replace(f"|{u}-n|", "||", 1) + "\r").encode()
    files = {
        "batch.hl7": batch,
        "mllp.hl7": mllp,
        "unix.hl7": unix,
        "orphan.hl7": orphan,
        "bad_enc.hl7": bad_enc,
        "truncated.hl7": truncated,
        "gb_as_utf8.hl7": gb_as_utf8,
        "gb_ok.hl7": gb_ok,
        "bad_count.hl7": bad_count,
        "no_control_id.hl7": no_fields,
        "empty.hl7": b"",
    }
    for name, data in files.items():
        landing.write("lis", "H001", name, data)

    report = ingest.run(landing.spark, landing.cfg, source="lis")
    lis = report.source("lis")
    assert lis.files_seen == 11
    assert lis.files_duplicate == 0
    assert lis.records_seen == lis.records_landed + lis.records_quarantined
    # batch 2 + mllp 1 + unix 1 + gb_ok 1 + bad_count 1 = 6 landed
    assert lis.records_landed == 6
    assert landing.codes("lis") == {
        "HL7_TRUNCATED": 2,  # unclosed MLLP frame, MSH cut before MSH-12
        "HL7_NO_MSH": 1,
        "HL7_BAD_ENCODING_CHARS": 1,
        "ENCODING_MISMATCH": 1,
        "HL7_TRAILER_COUNT_MISMATCH": 1,  # a finding of bad_count.hl7, not a record
        "HL7_MSH_INVALID": 1,
        "ZERO_BYTE_FILE": 1,
    }
    assert (lis.records_quarantined, lis.findings_quarantined) == (7, 1)
    assert (lis.files_quarantined, lis.files_landed) == (6, 5)  # mllp: 1 landed, 1 not
    msgs = landing.rows("bronze.lis_hl7v2_messages")
    got = {r["control_id"]: r for r in msgs.collect()}
    assert set(got) == {f"{u}-b1", f"{u}-b2", f"{u}-m1", f"{u}-lf", f"{u}-g2", f"{u}-c1"}
    b1 = got[f"{u}-b1"]
    assert (b1["message_code"], b1["trigger_event"], b1["version_id"]) == ("ORU", "R01", "2.5")
    assert b1["raw_message"] == oru(f"{u}-b1", "\r\n")  # BOM and envelope gone, bytes kept
    assert (b1["record_index"], b1["institution_code"], b1["source_system"]) == (0, "H001", "lis")
    assert got[f"{u}-b2"]["record_index"] == 1
    g2 = got[f"{u}-g2"]
    assert (g2["encoding"], g2["sending_facility"]) == ("GB18030", "检验科")
    assert "张^三" in g2["raw_message"]
    assert len(b1["file_sha256"]) == 64
    assert b1["ingest_run_id"] == report.run_id
    # Quarantine keeps the exact bytes and a catalogued detail without values.
    q = {r["error_name"]: r for r in landing.rows("bronze.quarantine").collect()}
    assert q["ENCODING_MISMATCH"]["raw_bytes"] == gb_as_utf8
    assert q["ENCODING_MISMATCH"]["error_code"] == ErrorCode.ENCODING_MISMATCH.id
    assert "张" not in q["ENCODING_MISMATCH"]["detail"]
    assert q["HL7_NO_MSH"]["raw_bytes"] == b"PID|1||X\rOBX|1|NM|A||1\r"
    # A BTS count that disagrees no longer quarantines the batch: its message landed above
    # and the trailer is a finding with its own bytes.
    assert q["HL7_TRAILER_COUNT_MISMATCH"]["raw_bytes"] == b"BTS|3\r"
    assert "declares 3 but 1 were found" in q["HL7_TRAILER_COUNT_MISMATCH"]["detail"]

    # Rerun over the unchanged landing data plus the same content under another name (one
    # run proves both): the unchanged files are not read again, the copy is a duplicate
    # (recorded, not landed), and nothing is added.
    before = (msgs.count(), landing.rows("bronze.quarantine").count())
    landing.write("lis", "H002", "batch_copy.hl7", batch)
    again = ingest.run(landing.spark, landing.cfg, source="lis").source("lis")
    assert (again.files_seen, again.files_unchanged, again.files_duplicate) == (12, 11, 1)
    assert (again.records_seen, again.files_landed, again.files_quarantined) == (0, 0, 0)
    assert (msgs.count(), landing.rows("bronze.quarantine").count()) == before
    manifest = {
        r["file_path"].rsplit("/", 1)[-1]: r for r in landing.rows("ops.landing_files").collect()
    }
    assert manifest["batch_copy.hl7"]["status"] == "duplicate"
    assert manifest["batch_copy.hl7"]["duplicate_of"].endswith("/lis/H001/batch.hl7")
    assert manifest["empty.hl7"]["status"] == "quarantined"
    assert msgs.count() == before[0]


def adt(control: str, sep: str = "\r") -> str:
    segs = [
        msh(control, msg="ADT^A01^ADT_A01"),
        "EVN|A01|20240102030405",
        "PID|1||MRN3^^^HOSP^MR||ROE^RICHARD",
        "PV1|1|I|WARD1^01",
    ]
    return sep.join(segs) + sep


def without_msh(message: str) -> str:
    """The message as a feed sends it when its MSH got lost: from its second segment on."""
    return message.split("\r", 1)[1]


def test_one_broken_message_does_not_quarantine_its_batch(landing: Landing, unique: str) -> None:
    """A batch whose messages lost their MSH, with a BTS count that disagrees: every good
    message lands whole, each broken one is its own quarantined record with its exact bytes,
    and the trailer is a finding (quarantined, counted apart, never silent)."""
    u = unique
    lost_oru, lost_adt = without_msh(oru(f"{u}-x1")), without_msh(adt(f"{u}-x2"))
    # Two patient groups in one ORU (PID|2, OBR set IDs restart): one message, not two.
    two_groups = oru(f"{u}-g") + "PID|2||MRN9^^^HOSP^MR||DOE^JOHN\rOBR|1|||K\rOBX|1|NM|K||4\r"
    body = [oru(f"{u}-a1"), lost_oru, oru(f"{u}-a2"), adt(f"{u}-a3"), lost_adt, two_groups]
    batch = "FHS|^~\\&|LIS\rBHS|^~\\&|LIS\r" + "".join(body) + "BTS|7\rFTS|1\r"
    # Structural envelope error (a BHS inside an open batch): the whole file is quarantined.
    nested = "BHS|^~\\&|LIS\r" + oru(f"{u}-n1") + "BHS|^~\\&|LIS\r" + oru(f"{u}-n2") + "BTS|1\r"
    # Counts agree once the lost MSH is its own record: no finding, CRLF separators.
    agree = "BHS|^~\\&|LIS\r\n" + oru(f"{u}-c1", "\r\n") + lost_oru.replace("\r", "\r\n")
    agree += "BTS|2\r\n"
    landing.write("lis", "H001", "broken.hl7", batch.encode())
    landing.write("lis", "H001", "nested.hl7", nested.encode())
    landing.write("lis", "H001", "agree.hl7", agree.encode())

    report = ingest.run(landing.spark, landing.cfg, source="lis")
    lis = report.source("lis")

    assert (lis.records_seen, lis.records_landed, lis.records_quarantined) == (10, 5, 5)
    assert lis.findings_quarantined == 1
    assert (lis.files_landed, lis.files_quarantined) == (2, 1)
    got = {r["control_id"]: r for r in landing.rows("bronze.lis_hl7v2_messages").collect()}
    assert set(got) == {f"{u}-a1", f"{u}-a2", f"{u}-a3", f"{u}-g", f"{u}-c1"}
    # The messages before a lost MSH keep exactly their own segments.
    assert got[f"{u}-a1"]["raw_message"] == oru(f"{u}-a1")
    assert got[f"{u}-a3"]["raw_message"] == adt(f"{u}-a3")
    assert got[f"{u}-g"]["raw_message"] == two_groups
    assert got[f"{u}-c1"]["raw_message"] == oru(f"{u}-c1", "\r\n")
    assert [got[f"{u}-a{i}"]["record_index"] for i in (1, 2, 3)] == [0, 2, 3]

    q = landing.rows("bronze.quarantine").collect()
    by_file: dict[str, list[Any]] = {}
    for r in q:
        by_file.setdefault(r["file_path"].rsplit("/", 1)[-1], []).append(r)
    broken = sorted(by_file["broken.hl7"], key=lambda r: r["record_index"])
    assert [(r["record_index"], r["error_name"]) for r in broken] == [
        (-1, "HL7_TRAILER_COUNT_MISMATCH"),  # the file's first trailer (BTS)
        (1, "HL7_NO_MSH"),
        (4, "HL7_NO_MSH"),
    ]
    finding, lost1, lost2 = broken
    assert (lost1["raw_bytes"], lost2["raw_bytes"]) == (lost_oru.encode(), lost_adt.encode())
    assert lost1["detail"] == (
        "HL7 v2 record 1 of broken.hl7 has segments but no MSH header (starts with PID)."
    )
    assert lost2["detail"].endswith("(starts with EVN).")
    assert finding["raw_bytes"] == b"BTS|7\r"
    assert finding["error_code"] == ErrorCode.HL7_TRAILER_COUNT_MISMATCH.id == "LH-ING-017"
    assert "BTS-1, messages in the batch declares 7 but 6 were found" in finding["detail"]
    assert {r["error_name"] for r in by_file["nested.hl7"]} == {"HL7_BAD_ENVELOPE"}
    assert len(by_file["nested.hl7"]) == 2
    agreed = by_file["agree.hl7"]
    assert [(r["record_index"], r["error_name"]) for r in agreed] == [(1, "HL7_NO_MSH")]
    assert agreed[0]["raw_bytes"] == lost_oru.replace("\r", "\r\n").encode()

    manifest = {
        r["file_path"].rsplit("/", 1)[-1]: r for r in landing.rows("ops.landing_files").collect()
    }
    m = manifest["broken.hl7"]
    assert (m["status"], m["records_landed"], m["records_quarantined"]) == ("landed", 4, 2)
    assert m["findings_quarantined"] == 1
    assert manifest["nested.hl7"]["status"] == "quarantined"
    runs = landing.spark.table("ops.ingest_runs").where(f"run_id = '{report.run_id}'").first()
    assert runs["findings_quarantined"] == 1

    # Rerun: nothing read, nothing added; the finding is not written twice.
    tables = ("bronze.lis_hl7v2_messages", "bronze.quarantine")
    before = [landing.rows(t).count() for t in tables]
    again = ingest.run(landing.spark, landing.cfg, source="lis").source("lis")
    assert (again.records_seen, again.findings_quarantined, again.files_unchanged) == (0, 0, 3)
    assert [landing.rows(t).count() for t in tables] == before


def test_unknown_source_is_refused(landing: Landing) -> None:
    with pytest.raises(LakehouseError) as info:
        ingest.run(landing.spark, landing.cfg, source="nosuch")
    assert info.value.code is ErrorCode.UNKNOWN_SOURCE
