"""Same seed, same bytes; a patient does not depend on the chunk size or on other patients."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.synthetic import HospitalConfig, generate
from lakehouse.synthetic.population import build_sites, build_staff, generate_patient


def tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    config = HospitalConfig(patients=30, sites=4, seed=5, chunk_size=12)
    first = tree_hash(generate(tmp_path / "a", config).out)
    second = tree_hash(generate(tmp_path / "b", config).out)
    assert first == second
    assert any(k.startswith("landing/fhir/A0003") for k in first)  # 4 sites: FHIR, CSV, FHIR
    other = tree_hash(
        generate(tmp_path / "c", HospitalConfig(patients=30, sites=4, seed=6, chunk_size=12)).out
    )
    assert other["truth/persons.parquet"] != first["truth/persons.parquet"]


def test_patients_do_not_depend_on_chunking(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", HospitalConfig(patients=25, sites=3, seed=9, chunk_size=25))
    b = generate(tmp_path / "b", HospitalConfig(patients=25, sites=3, seed=9, chunk_size=7))
    for entity in ("persons", "source_ids", "encounters", "diagnoses", "medications"):
        assert (
            pq.read_table(a.out / "truth" / f"{entity}.parquet").to_pylist()
            == pq.read_table(b.out / "truth" / f"{entity}.parquet").to_pylist()
        )


def test_generate_patient_is_a_pure_function() -> None:
    sites = build_sites(3)
    staff = build_staff(1, sites)
    assert generate_patient(1, 17, sites, staff) == generate_patient(1, 17, sites, staff)
    assert generate_patient(1, 17, sites, staff) != generate_patient(2, 17, sites, staff)


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("not ours")
    with pytest.raises(LakehouseError) as info:
        generate(tmp_path, HospitalConfig(patients=2))
    assert info.value.code is ErrorCode.SYNTH_OUTPUT_NOT_EMPTY
    assert (tmp_path / "keep.txt").exists()


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        (HospitalConfig(patients=0), "patients"),
        (HospitalConfig(sites=0), "sites"),
        (HospitalConfig(sites=10), "sites"),
        (HospitalConfig(chunk_size=0), "chunk_size"),
    ],
)
def test_rejects_bad_parameters(tmp_path: Path, config: HospitalConfig, setting: str) -> None:
    with pytest.raises(LakehouseError) as info:
        generate(tmp_path / "x", config)
    assert info.value.code is ErrorCode.SYNTH_PARAMETER_INVALID
    assert info.value.params["setting"] == setting


def test_overwrite_replaces_an_earlier_hospital(tmp_path: Path) -> None:
    generate(tmp_path, HospitalConfig(patients=3, seed=1))
    again = generate(tmp_path, HospitalConfig(patients=4, seed=1), overwrite=True)
    assert again.manifest["parameters"]["patients"] == 4
    assert pq.read_table(tmp_path / "truth" / "persons.parquet").num_rows == 4


def test_dirt_changes_deliveries_not_the_truth(tmp_path: Path) -> None:
    from lakehouse.synthetic import DirtRates
    from tests.unit.synthetic.conftest import HIGH_DIRT

    clean = generate(tmp_path / "a", HospitalConfig(patients=20, seed=3, dirt=DirtRates.clean()))
    dirty = generate(tmp_path / "b", HospitalConfig(patients=20, seed=3, dirt=HIGH_DIRT))
    for entity in ("persons", "source_ids", "encounters", "diagnoses", "medications", "questions"):
        assert (
            pq.read_table(clean.out / "truth" / f"{entity}.parquet").to_pylist()
            == pq.read_table(dirty.out / "truth" / f"{entity}.parquet").to_pylist()
        )

    def values(out: Path) -> dict[str, float]:
        rows = pq.read_table(out / "truth" / "labs.parquet").to_pylist()
        return {r["lab_id"]: r["value"] for r in rows}

    assert values(clean.out) == values(dirty.out)


@pytest.mark.slow
def test_memory_stays_bounded_as_the_population_grows(tmp_path: Path) -> None:
    import subprocess
    import sys

    def peak_mib(patients: int) -> float:
        code = (
            "import resource, sys; from pathlib import Path;"
            "from lakehouse.synthetic import HospitalConfig, generate;"
            f"generate(Path(sys.argv[1]), HospitalConfig(patients={patients}, chunk_size=100));"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
        )
        out = tmp_path / str(patients)
        done = subprocess.run(
            [sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True
        )
        return float(done.stdout.strip().splitlines()[-1])

    small, large = peak_mib(500), peak_mib(3000)
    assert large < small * 1.25, (small, large)


def test_his_goes_to_any_sqlalchemy_url(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    db = tmp_path / "elsewhere.db"
    report = generate(
        tmp_path / "out", HospitalConfig(patients=5, seed=4, his_url=f"sqlite:///{db}")
    )
    assert not (report.out / "his" / "his.sqlite").exists()
    assert report.manifest["parameters"]["his"] == "sqlite"
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(text("select count(*) from patients")).scalar_one()
    engine.dispose()
    assert rows == report.manifest["counts"]["his"]["patients"]
