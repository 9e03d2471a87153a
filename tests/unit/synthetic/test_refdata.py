"""Our formats next to real public samples (../shared/refdata; skipped when not set)."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from lakehouse.synthetic import HospitalReport
from lakehouse.synthetic.dicom import person_name

pytestmark = pytest.mark.refdata


def _raw_name(path: Path) -> bytes:
    ds = pydicom.dcmread(path)
    raw = ds.get_item((0x0010, 0x0010))
    assert raw is not None
    return bytes(raw.value)


def test_gb18030_person_names_are_encoded_like_the_pydicom_sample(
    refdata: Path, clean_hospital: HospitalReport
) -> None:
    sample = refdata / "dicom/src/pydicom/data/charset_files/chrX2.dcm"
    ref = _raw_name(sample)
    assert ref == b"Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab="
    ours = [
        p
        for p in sorted((clean_hospital.out / "landing/pacs/H0001").glob("*.dcm"))
        if pydicom.dcmread(p).SpecificCharacterSet == "GB18030"
    ]
    assert ours
    for path in ours:
        ds = pydicom.dcmread(path)
        groups = _raw_name(path).rstrip(b" ").split(b"=")  # a trailing empty group may go
        assert groups[0].isascii()
        if len(groups) > 1 and groups[1]:
            ideographic = groups[1].decode("gb18030")  # GB18030 bytes, as in the sample
            assert ideographic == str(ds.PatientName.ideographic)
            name = ideographic.replace("^", "")
            assert person_name(name).startswith(groups[0].decode("ascii") + "=" + ideographic)


def test_fhir_ndjson_has_the_shape_of_a_bulk_export(
    refdata: Path, clean_hospital: HospitalReport
) -> None:
    sample = refdata / "fhir-bulk-synthea/Patient.000.ndjson"
    ref = json.loads(sample.read_text("utf-8").splitlines()[0])
    ours = json.loads(
        sorted((clean_hospital.out / "landing/fhir/A0001").glob("Patient.*.ndjson"))[0]
        .read_text("utf-8")
        .splitlines()[0]
    )
    for key in ("resourceType", "id", "identifier", "name", "gender", "birthDate", "address"):
        assert key in ref
        assert key in ours
