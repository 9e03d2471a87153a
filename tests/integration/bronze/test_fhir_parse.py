"""The FHIR parse on crafted bytes: lines, BOM, CRLF, a truncated last line, bundles."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from lakehouse.sources.fhir import parse_resources

pytestmark = pytest.mark.spark

BOM = b"\xef\xbb\xbf"


def _p(i: str) -> str:
    doc = {"resourceType": "Patient", "id": i, "name": [{"text": "张三"}]}
    return json.dumps(doc, ensure_ascii=False)


FILES: dict[str, bytes] = {
    # BOM, CRLF ends, a blank line (skipped, numbering kept) and a truncated last line.
    "a.ndjson": BOM + f"{_p('a0')}\r\n{_p('a1')}\r\n\r\n  \n{_p('a4')}\n{_p('a5')[:-7]}".encode(),
    "b.NDJSON": f"[1]\n{{}}\n{json.dumps({'id': 'x'})}\n".encode(),
    # Every CR at a line's end goes (two before LF; one at the end of the file).
    "c.ndjson": f"{_p('c0')}\r\r\n{_p('c1')}\r".encode(),
    "gb.ndjson": _p("g").encode("gb18030"),
    "bundle.json": json.dumps(
        {
            "resourceType": "Bundle",
            "id": "b",
            "entry": [
                {"resource": {"resourceType": "Encounter", "id": "e0"}},
                None,
                {"fullUrl": "urn:x"},
                {"resource": {"resourceType": "Encounter", "id": "e3"}},
            ],
        }
    ).encode(),
    "single.json": BOM + (_p("s") + "\r\n").encode(),
}

# (file, record_index) -> (error_name, error_reason, resource_type, resource_id, bundle_id)
EXPECTED: dict[tuple[str, int], tuple[Any, ...]] = {
    ("a.ndjson", 0): (None, None, "Patient", "a0", None),
    ("a.ndjson", 1): (None, None, "Patient", "a1", None),
    ("a.ndjson", 2): ("FHIR_INVALID_JSON", "not a JSON object", None, None, None),  # a bare CR
    ("a.ndjson", 4): (None, None, "Patient", "a4", None),
    ("a.ndjson", 5): ("FHIR_INVALID_JSON", "not a JSON object", None, None, None),
    ("b.NDJSON", 0): ("FHIR_INVALID_JSON", "not a JSON object", None, None, None),
    ("b.NDJSON", 1): ("FHIR_INVALID_JSON", "no resourceType", None, None, None),
    ("b.NDJSON", 2): ("FHIR_INVALID_JSON", "no resourceType", None, "x", None),
    ("c.ndjson", 0): (None, None, "Patient", "c0", None),
    ("c.ndjson", 1): (None, None, "Patient", "c1", None),
    ("gb.ndjson", 0): ("ENCODING_MISMATCH", None, None, None, None),
    ("bundle.json", 0): (None, None, "Encounter", "e0", "b"),
    ("bundle.json", 2): ("FHIR_INVALID_JSON", "not a JSON object", None, None, "b"),
    ("bundle.json", 3): (None, None, "Encounter", "e3", "b"),
    ("single.json", 0): (None, None, "Patient", "s", None),
}


@pytest.fixture(scope="module")
def records(spark: Any) -> Any:
    rows = [
        (
            f"file:/landing/fhir/H1/{name}",
            hashlib.sha256(data).hexdigest(),
            "fhir",
            "H1",
            len(data),
            data,
        )
        for name, data in FILES.items()
    ]
    files = spark.createDataFrame(
        rows,
        "file_path string, file_sha256 string, source_system string, institution_code string, "
        "size_bytes long, content binary",
    )
    return parse_resources(files)


def test_every_record_with_its_lineage_and_outcome(records: Any) -> None:
    got = {}
    for r in records.collect():
        name = r["file_path"].rsplit("/", 1)[-1]
        assert r["file_sha256"] == hashlib.sha256(FILES[name]).hexdigest()
        outcome = (r["error_name"], r["error_reason"], r["resource_type"], r["resource_id"])
        got[(name, r["record_index"])] = (*outcome, r["bundle_id"])
    assert got == EXPECTED


def test_raw_text_and_bytes_kept(records: Any) -> None:
    rows = {(r["file_path"].rsplit("/", 1)[-1], r["record_index"]): r for r in records.collect()}
    # A landed line keeps its JSON without the BOM and the CR of CRLF.
    assert rows[("a.ndjson", 0)]["raw_json"] == _p("a0")
    assert rows[("a.ndjson", 0)]["raw_bytes"] is None
    assert [rows[("c.ndjson", i)]["raw_json"] for i in (0, 1)] == [_p("c0"), _p("c1")]
    assert rows[("single.json", 0)]["raw_json"] == _p("s") + "\r\n"
    # A refused line keeps its bytes; a file that is not UTF-8 keeps all of them.
    assert rows[("a.ndjson", 5)]["raw_bytes"] == _p("a5")[:-7].encode()
    assert rows[("gb.ndjson", 0)]["raw_bytes"] == FILES["gb.ndjson"]
    assert rows[("bundle.json", 3)][
        "raw_json"
    ] == '{"resourceType": "Encounter", "id": "e3"}'.replace(": ", ":").replace(", ", ",")


def test_a_filter_on_the_outcome_keeps_the_same_rows(records: Any) -> None:
    landed = {
        (r["file_path"], r["record_index"]) for r in records.where("error_name is null").collect()
    }
    expected = {(f"file:/landing/fhir/H1/{n}", i) for (n, i), v in EXPECTED.items() if v[0] is None}
    assert landed == expected
