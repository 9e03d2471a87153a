"""The pure parts of the pixel step: decoding a synthetic DICOM file, resampling, scaling and
the catalogued error of each kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lakehouse.errors import ErrorCode
from lakehouse.features.images import decode, decode_row, local_path, resample, scale
from lakehouse.synthetic.dicom import pixels, render
from lakehouse.synthetic.model import Encounter, Patient
from lakehouse.synthetic.population import build_sites, build_staff, generate_patient

SEED = 42


def _study() -> tuple[bytes, Patient, Encounter]:
    sites = build_sites(1)
    staff = build_staff(SEED, sites)
    doctors = {s.staff_id: s for group in staff.values() for s in group}
    for index in range(50):
        p = generate_patient(SEED, index, sites, staff)
        for e in p.encounters:
            if e.imaging is not None:
                reg = p.registrations[e.site_code]
                data, _ = render(SEED, p, reg, e, sites[0], doctors[e.doctor], "ISO_IR 192", False)
                return data, p, e
    raise AssertionError("no imaging study in 50 patients")


def test_a_synthetic_study_decodes_to_its_pixels_scaled() -> None:
    data, _, e = _study()
    assert e.imaging is not None
    img, stats = decode(data)
    source = pixels(SEED, e.imaging).astype(np.float64)
    np.testing.assert_array_equal(img, scale(source))
    assert img.dtype == np.float32
    assert img.shape == (64, 64)
    assert (stats["rows"], stats["columns"]) == (64, 64)
    assert stats["source_min"] == source.min()
    assert stats["source_max"] == source.max()
    assert 0.0 <= img.min() <= img.max() <= 1.0


def test_truncated_and_foreign_files_are_refused_with_a_reason() -> None:
    data, _, _ = _study()
    with pytest.raises(ValueError, match=r"shorter|not readable|decodable"):
        decode(data[: len(data) - 2000])
    with pytest.raises(ValueError, match=r"no pixel data|not readable"):
        decode(b"MSH|^~\\&|not a dicom file")


def test_decode_row_quarantines_with_catalogued_codes(tmp_path: Path) -> None:
    data, _, _ = _study()
    good, cut = tmp_path / "good.dcm", tmp_path / "cut.dcm"
    good.write_bytes(data)
    cut.write_bytes(data[:700])
    row = {"study_instance_uid": "1.2.3", "patient_key": "H0001|1"}
    ok = decode_row({**row, "pixel_data_ref": good.resolve().as_uri()})
    assert ok.get("error_code") is None
    assert len(ok["pixels"]) == 64 * 64 * 4
    assert ok["file_sha256"]
    bad = decode_row({**row, "pixel_data_ref": cut.resolve().as_uri()})
    assert bad["error_code"] == ErrorCode.IMAGE_PIXELS_UNDECODABLE.id
    assert "pixels" not in bad or bad["pixels"] is None
    gone = decode_row({**row, "pixel_data_ref": (tmp_path / "gone.dcm").resolve().as_uri()})
    assert gone["error_code"] == ErrorCode.IMAGE_FILE_UNREADABLE.id
    remote = decode_row({**row, "pixel_data_ref": "s3://bucket/x.dcm"})
    assert remote["error_code"] == ErrorCode.IMAGE_FILE_UNREADABLE.id
    for failed in (bad, gone, remote):
        assert "H0001|1" not in failed["detail"]


def test_local_paths_resample_and_scale() -> None:
    assert local_path("file:///data/a%20b.dcm") == Path("/data/a b.dcm")
    assert local_path("/data/x.dcm") == Path("/data/x.dcm")
    assert local_path("hdfs://nn/x.dcm") is None
    big = np.arange(128 * 128, dtype=np.float64).reshape(128, 128)
    small = resample(big)
    assert small.shape == (64, 64)
    assert small[0, 0] == big[:2, :2].mean()
    assert resample(np.ones((100, 90))).shape == (64, 64)
    assert not scale(np.full((64, 64), 7.0)).any()
