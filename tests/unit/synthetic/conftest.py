"""Small synthetic hospitals shared by the synthetic tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.synthetic import DirtRates, HospitalConfig, HospitalReport, generate

#: Dirty enough that every defect kind shows up in a small hospital.
HIGH_DIRT = DirtRates(
    duplicate_file=0.1,
    truncated_file=0.05,
    wrong_encoding=0.1,
    malformed_message=0.05,
    missing_field=0.05,
    unit_variant=0.1,
    out_of_range=0.02,
    late_correction=0.1,
)


@pytest.fixture(scope="session")
def clean_hospital(tmp_path_factory: pytest.TempPathFactory) -> HospitalReport:
    """80 patients, 3 sites, no dirt: every emitted record must match the truth."""
    out = tmp_path_factory.mktemp("synth") / "clean"
    return generate(
        out, HospitalConfig(patients=80, sites=3, seed=7, chunk_size=30, dirt=DirtRates.clean())
    )


@pytest.fixture(scope="session")
def dirty_hospital(tmp_path_factory: pytest.TempPathFactory) -> HospitalReport:
    """80 patients, 3 sites, high dirt rates: every defect must be where the truth says."""
    out = tmp_path_factory.mktemp("synth") / "dirty"
    return generate(
        out, HospitalConfig(patients=80, sites=3, seed=11, chunk_size=30, dirt=HIGH_DIRT)
    )


def files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))
