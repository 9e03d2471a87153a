"""HL7 v2 landing: splitting, MSH fields, every bad input quarantined with its code, reruns."""

from __future__ import annotations

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
    orphan = b"BHS|^~\\&|LIS\rPID|1||X\rOBX|1|NM|A||1\rBTS|0\r"
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
    # batch 2 + mllp 1 + unix 1 + gb_ok 1 = 5 landed
    assert lis.records_landed == 5
    assert landing.codes("lis") == {
        "HL7_TRUNCATED": 2,  # unclosed MLLP frame, MSH cut before MSH-12
        "HL7_NO_MSH": 1,
        "HL7_BAD_ENCODING_CHARS": 1,
        "ENCODING_MISMATCH": 1,
        "HL7_BAD_ENVELOPE": 1,
        "HL7_MSH_INVALID": 1,
        "ZERO_BYTE_FILE": 1,
    }
    assert lis.records_quarantined == 8
    assert (lis.files_quarantined, lis.files_landed) == (7, 4)  # mllp: 1 landed, 1 not
    msgs = landing.rows("bronze.lis_hl7v2_messages")
    got = {r["control_id"]: r for r in msgs.collect()}
    assert set(got) == {f"{u}-b1", f"{u}-b2", f"{u}-m1", f"{u}-lf", f"{u}-g2"}
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
    assert q["HL7_BAD_ENVELOPE"]["detail"].endswith(
        "(BTS message count differs from the batch); its messages are quarantined."
    )

    # Rerun over unchanged landing data: nothing read, nothing added.
    before = (msgs.count(), landing.rows("bronze.quarantine").count())
    again = ingest.run(landing.spark, landing.cfg, source="lis").source("lis")
    assert (again.files_unchanged, again.records_seen, again.files_landed) == (11, 0, 0)
    assert (msgs.count(), landing.rows("bronze.quarantine").count()) == before

    # The same content under another name is a duplicate: recorded, not landed.
    landing.write("lis", "H002", "batch_copy.hl7", batch)
    dup = ingest.run(landing.spark, landing.cfg, source="lis").source("lis")
    assert (dup.files_duplicate, dup.records_seen) == (1, 0)
    manifest = {
        r["file_path"].rsplit("/", 1)[-1]: r for r in landing.rows("ops.landing_files").collect()
    }
    assert manifest["batch_copy.hl7"]["status"] == "duplicate"
    assert manifest["batch_copy.hl7"]["duplicate_of"].endswith("/lis/H001/batch.hl7")
    assert manifest["empty.hl7"]["status"] == "quarantined"
    assert msgs.count() == before[0]


def test_unknown_source_is_refused(landing: Landing) -> None:
    with pytest.raises(LakehouseError) as info:
        ingest.run(landing.spark, landing.cfg, source="nosuch")
    assert info.value.code is ErrorCode.UNKNOWN_SOURCE
