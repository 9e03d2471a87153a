"""FHIR, CDA, notes and CSV landing: one run over crafted files with every bad input."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jobs import ingest
from tests.integration.bronze.conftest import Landing

pytestmark = pytest.mark.spark

XXE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>\n'
)


def cda(u: str, title: str, encoding: str = "UTF-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3">'
        f'<id root="2.16.156.10011.1.1" extension="{u}"/>'
        '<code code="C0001" codeSystem="2.16.156.10011.2.4"/>'
        f'<title>{title}</title><effectiveTime value="20240102"/>'
        "</ClinicalDocument>\n"
    )


def test_fhir_cda_notes_csv_land_and_quarantine(landing: Landing, unique: str) -> None:
    u = unique
    w = landing.write
    # FHIR: 2 good lines, 1 broken line, 1 without resourceType, 1 blank; a bundle of 3;
    # a GB18030 NDJSON file (JSON must be UTF-8).
    ndjson = "\n".join(
        [
            json.dumps({"resourceType": "Patient", "id": f"{u}-p1", "name": [{"text": "张三"}]}),
            json.dumps({"resourceType": "Observation", "id": f"{u}-o1"}),
            '{"resourceType": "Patient", "id": ',
            json.dumps({"id": f"{u}-x"}),
            "",
        ]
    )
    w("fhir", "H001", "Patient.00000.ndjson", ndjson.encode())
    bundle = {
        "resourceType": "Bundle",
        "id": f"{u}-b",
        "entry": [{"resource": {"resourceType": "Encounter", "id": f"{u}-e{i}"}} for i in range(3)],
    }
    w("fhir", "H001", "bundle.json", json.dumps(bundle).encode())
    w(
        "fhir",
        "H001",
        "gb.ndjson",
        json.dumps(
            {"resourceType": "Patient", "id": f"{u}-g", "name": [{"text": "李四"}]},
            ensure_ascii=False,
        ).encode("gb18030"),
    )
    # CDA: UTF-8 ok, GB18030 declared GB18030 ok, GB18030 declared UTF-8, broken, XXE, empty.
    w("emr", "H001", "ok.xml", cda(f"{u}-1", "出院小结").encode())
    w("emr", "H001", "gb_ok.xml", cda(f"{u}-2", "入院记录", "GB18030").encode("gb18030"))
    w("emr", "H001", "gb_as_utf8.xml", cda(f"{u}-3", "病程记录").encode("gb18030"))
    w("emr", "H001", "broken.xml", cda(f"{u}-4", "x").replace("</title>", "").encode())
    w(
        "emr",
        "H001",
        "xxe.xml",
        XXE.replace("ClinicalDocument xmlns", f"ClinicalDocument id='{u}' xmlns").encode(),
    )
    w("emr", "H001", "empty.xml", b"")
    # Notes: UTF-8 with BOM, GB18030, bytes that are neither.
    w("notes", "H002", "n1.txt", ("\ufeff" + f"主诉:头痛三天 {u}").encode())
    w("notes", "H002", "n2.txt", f"现病史:无 {u}".encode("gb18030"))
    w("notes", "H002", "n3.txt", b"\x81\x30\xff\xfe" + u.encode())
    # CSV (GB18030, CRLF): header + 3 rows, the second ragged; a quoted field over two lines.
    rows = ["姓名,性别,诊断", f"张三,男,{u}", "李四,女", f'王五,男,"高血压\r\n二级 {u}"', ""]
    w("csv", "H001", "patients_00000.csv", "\r\n".join(rows).encode("gb18030"))

    report = ingest.run(landing.spark, landing.cfg)
    for s in report.sources:
        assert s.records_seen == s.records_landed + s.records_quarantined, s
    fhir, emr = report.source("fhir"), report.source("emr")
    notes, csv = report.source("notes"), report.source("csv")
    # The test's quarantined records in one Spark job, for every check of the quarantine.
    quarantined = landing.rows("bronze.quarantine").collect()

    def codes(source: str) -> dict[str, int]:
        """Quarantined records of ``source`` by error name (as Landing.codes counts them)."""
        return dict(Counter(r["error_name"] for r in quarantined if r["source_system"] == source))

    assert (fhir.records_landed, fhir.records_quarantined) == (5, 3)
    assert codes("fhir") == {"FHIR_INVALID_JSON": 2, "ENCODING_MISMATCH": 1}
    assert (emr.records_landed, emr.records_quarantined) == (2, 4)
    assert codes("emr") == {
        "ENCODING_MISMATCH": 1,
        "XML_NOT_WELL_FORMED": 1,
        "XML_FORBIDDEN_CONSTRUCT": 1,
        "ZERO_BYTE_FILE": 1,
    }
    assert (notes.records_landed, notes.records_quarantined) == (2, 1)
    assert codes("notes") == {"ENCODING_UNDETECTED": 1}
    assert (csv.records_landed, csv.records_quarantined) == (2, 1)
    assert codes("csv") == {"CSV_RAGGED_ROW": 1}

    res = {r["resource_id"]: r for r in landing.rows("bronze.fhir_resources").collect()}
    assert set(res) == {f"{u}-p1", f"{u}-o1", f"{u}-e0", f"{u}-e1", f"{u}-e2"}
    assert res[f"{u}-e2"]["bundle_id"] == f"{u}-b"
    assert res[f"{u}-e2"]["record_index"] == 2
    assert json.loads(res[f"{u}-p1"]["raw_json"])["name"][0]["text"] == "张三"
    docs = {r["document_id"]: r for r in landing.rows("bronze.emr_cda_documents").collect()}
    assert docs[f"2.16.156.10011.1.1^{u}-1"]["title"] == "出院小结"
    gb = docs[f"2.16.156.10011.1.1^{u}-2"]
    assert (gb["title"], gb["encoding"], gb["document_code"]) == ("入院记录", "GB18030", "C0001")
    q = {r["file_path"].rsplit("/", 1)[-1]: r for r in quarantined}
    assert q["xxe.xml"]["error_name"] == "XML_FORBIDDEN_CONSTRUCT"
    assert "passwd" not in q["xxe.xml"]["detail"]
    assert "root:" not in q["xxe.xml"]["detail"]
    assert q["gb_as_utf8.xml"]["detail"].startswith("Record 0 of gb_as_utf8.xml declares")
    texts = {r["encoding"]: r["text"] for r in landing.rows("bronze.notes_documents").collect()}
    assert texts == {"UTF-8": f"主诉:头痛三天 {u}", "GB18030": f"现病史:无 {u}"}
    csv_rows = {r["record_index"]: r for r in landing.rows("bronze.csv_rows").collect()}
    assert csv_rows[0]["values"] == {"姓名": "张三", "性别": "男", "诊断": u}
    assert csv_rows[2]["values"]["诊断"] == f"高血压\r\n二级 {u}"
    assert q["patients_00000.csv"]["raw_bytes"] == "李四,女\r\n".encode("gb18030")
    assert q["patients_00000.csv"]["record_index"] == 1
