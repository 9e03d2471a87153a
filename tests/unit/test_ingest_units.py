"""Ingestion pieces that need no JVM: settings defaults, error templates, file parsers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lakehouse.errors import ErrorCode, IngestError, error
from lakehouse.settings import Settings
from lakehouse.sources import cda, csv_rows
from lakehouse.sources.records import _PARAM_ORDER, QUARANTINE_CODES, _printf_template


def test_landing_root_defaults_under_the_synthetic_hospital(tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path, data_dir=Path("var"))  # type: ignore[call-arg]
    assert cfg.landing_root == tmp_path / "var" / "synthetic" / "landing"
    moved = Settings(home=tmp_path, ingest={"landing_root": "in"})  # type: ignore[call-arg]
    assert moved.landing_root == tmp_path / "in"
    assert cfg.ingest.lookback_days == 7


RECORD_CODES = [
    c for c in ErrorCode if c.id.startswith(("LH-ING",)) and set(c.params()) <= set(_PARAM_ORDER)
]


def test_every_quarantine_code_renders_in_spark() -> None:
    assert len(RECORD_CODES) >= 14
    assert ErrorCode.HL7_TRAILER_COUNT_MISMATCH in RECORD_CODES


def test_hl7_trailer_finding_detail_carries_counts_not_values() -> None:
    """The finding's catalogued message: the trailer field and both counts, nothing else."""
    from lakehouse.sources.hl7v2 import BTS_COUNT

    params = {"file": "ORU_R01_00001.hl7", "reason": BTS_COUNT, "expected": "119", "found": "118"}
    text = ErrorCode.HL7_TRAILER_COUNT_MISMATCH.value.template.format(**params)
    assert text.startswith(
        "HL7 v2 file ORU_R01_00001.hl7: trailer count BTS-1, messages in the batch declares "
        "119 but 118 were found"
    )
    assert error(ErrorCode.HL7_TRAILER_COUNT_MISMATCH, **params).code.id == "LH-ING-017"


@pytest.mark.parametrize("code", RECORD_CODES)
def test_spark_rendering_of_each_ingest_code_matches_the_catalog(code: ErrorCode) -> None:
    """Oracle: the printf pattern Spark uses gives the catalog's own message."""
    params = {name: f"<{name}>" for name in _PARAM_ORDER}
    params["names"] = params["reason"]  # records carry one reason for both
    pattern = _printf_template(code)
    args = [params[name] for name in _PARAM_ORDER]
    rendered = re.sub(r"%(\d)\$s", lambda m: args[int(m.group(1)) - 1], pattern)
    expected = code.value.template.format(**{k: params[k] for k in code.params()})
    assert rendered.replace("%%", "%") == expected


def test_ingest_codes_raise_ingest_error() -> None:
    exc = error(ErrorCode.UNKNOWN_SOURCE, name="x", names="lis")
    assert isinstance(exc, IngestError)
    assert exc.code is ErrorCode.UNKNOWN_SOURCE


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<ClinicalDocument>&e;</ClinicalDocument>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<ClinicalDocument>&b;</ClinicalDocument>"
)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (XXE, "XML_FORBIDDEN_CONSTRUCT"),
        (BILLION_LAUGHS, "XML_FORBIDDEN_CONSTRUCT"),
        (b"<ClinicalDocument><title>x</ClinicalDocument>", "XML_NOT_WELL_FORMED"),
        (
            '<?xml version="1.0" encoding="UTF-8"?><a>病历</a>'.encode("gb18030"),
            "ENCODING_MISMATCH",
        ),
        ('<?xml version="1.0" encoding="GB18030"?><a>病历</a>'.encode(), "ENCODING_MISMATCH"),
        ('<?xml version="1.0" encoding="GB18030"?><a>病历</a>'.encode("gb18030"), None),
    ],
)
def test_cda_parser_table(data: bytes, code: str | None) -> None:
    (record,) = list(cda.parse_document(data, "f.xml"))
    assert record.get("error_name") == code
    if code is None:
        assert record["raw_xml"].endswith("<a>病历</a>")


def test_csv_parser_keeps_exact_bytes_of_a_ragged_row() -> None:
    text = "a,b\r\n1,2\r\n3\r\n\r\n4,5\r\n"
    records = list(csv_rows.parse_csv(text.encode("gb18030"), "f.csv"))
    assert [r["record_index"] for r in records] == [0, 1, 2]
    assert records[1]["error_name"] == "CSV_RAGGED_ROW"
    assert records[1]["raw_bytes"] == b"3\r\n"
    assert records[2]["values"] == {"a": "4", "b": "5"}


def test_every_code_the_sources_quarantine_with_is_mapped() -> None:
    """The quarantine's code and message expressions map QUARANTINE_CODES only: every code a
    source module names must be among them (else its records would get no code)."""
    sources = Path(__file__).resolve().parents[2] / "lakehouse" / "sources"
    named = {
        ErrorCode[name]
        for f in sources.glob("*.py")
        for name in re.findall(r"ErrorCode\.([A-Z0-9_]+)", f.read_text(encoding="utf-8"))
    }
    assert named
    assert named <= set(QUARANTINE_CODES)
    assert len(QUARANTINE_CODES) < len(ErrorCode) // 4  # small enough for generated code
