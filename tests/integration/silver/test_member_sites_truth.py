"""The member sites' landing files through the bronze parsers and the silver transforms,
scored against the synthetic hospital's truth; the Synthea bulk export counted per type.

Bronze-shaped DataFrames are built straight from the landing files with the bronze parsers
(as ``jobs.ingest`` does, without the Delta MERGE), so these tests need no tables.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.silver.csv_member import transform_csv
from lakehouse.silver.fhir import transform_fhir
from lakehouse.sources import csv_rows, fhir
from lakehouse.sources.files import read_files
from lakehouse.synthetic import DirtRates, HospitalConfig, generate

# A synthetic hospital, two transforms and ten collects: minutes on a shared 2-core machine.
pytestmark = pytest.mark.slow

_CLASS = {"O": "outpatient", "E": "emergency", "I": "inpatient"}


def bronze_from(
    spark: Any, root: Path, source: str, parse: Callable[[DataFrame], DataFrame]
) -> DataFrame:
    """Landed records of ``root/<source>/<institution>/*`` as a bronze table would hold them."""
    found = [
        ("file:" + str(p), p.stat().st_size, int(p.stat().st_mtime * 1000))
        for p in sorted((root / source).rglob("*"))
        if p.is_file()
    ]
    files = read_files(spark, found, source=source, root_uri="file:" + str(root))
    records = parse(files.where(F.col("size_bytes") > 0))
    landed = records.where(F.col("error_name").isNull()).withColumn(
        "ingested_at", F.current_timestamp()
    )
    return landed.localCheckpoint()


def collect(out: Any, columns: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    """Only the named columns of each silver table, as pandas (small test data)."""
    tables = {}
    for name, cols in columns.items():
        df = out.rows[name]
        tables[name] = df.select(*[c for c in cols if c in df.columns]).toPandas()
    return tables


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("members") / "hospital"
    generate(out, HospitalConfig(patients=20, sites=5, seed=7, dirt=DirtRates.clean()))
    return out


@pytest.fixture(scope="module")
def silver(spark: Any, hospital: Path) -> dict[str, Any]:
    landing = hospital / "landing"
    fhir_out = transform_fhir(bronze_from(spark, landing, "fhir", fhir.parse_resources))
    csv_out = transform_csv(bronze_from(spark, landing, "csv", csv_rows.parse_rows))
    cols = {
        "silver.patient": ["institution_code", "patient_id", "identifiers", "name", "sex_code"],
        "silver.encounter": [
            "institution_code",
            "patient_id",
            "encounter_id",
            "encounter_class",
            "start_at",
        ],
        "silver.diagnosis": [
            "institution_code",
            "patient_id",
            "diagnosis_id",
            "encounter_id",
            "source_code",
            "source_vocabulary",
        ],
        "silver.lab_result": [
            "institution_code",
            "patient_id",
            "result_id",
            "test_source_code",
            "test_source_vocabulary",
            "test_local_code",
            "value_as_number",
            "unit_source",
        ],
        "silver.medication_order": [
            "institution_code",
            "patient_id",
            "medication_order_id",
            "drug_source_code",
            "drug_source_vocabulary",
            "dose",
            "dose_unit",
            "frequency",
            "days_supply",
        ],
    }
    rejects = [
        r.asDict()
        for o in (fhir_out, csv_out)
        if o.rejects is not None
        for r in o.rejects.collect()
    ]
    return {
        "fhir": collect(fhir_out, cols),
        "csv": collect(csv_out, cols),
        "rejects": rejects,
    }


def _truth(hospital: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(hospital / "truth" / f"{name}.parquet")


def _systems(hospital: Path) -> dict[str, str]:
    enc = _truth(hospital, "encounters")
    return dict(zip(enc["institution_code"], enc["source_system"], strict=False))


def _score(name: str, expected: set[Any], got: list[Any]) -> None:
    """Exactly once, nothing else: precision and recall 1.0 (printed with -s)."""
    counts = Counter(got)
    found = set(counts)
    tp = len(expected & found)
    precision = tp / len(found) if found else 1.0
    recall = tp / len(expected) if expected else 1.0
    print(f"{name}: {len(expected)} true, precision {precision:.3f}, recall {recall:.3f}")
    assert [k for k, n in counts.items() if n > 1] == [], f"{name}: duplicates"
    assert expected - found == set(), f"{name}: missing"
    assert found - expected == set(), f"{name}: unexpected"


def test_no_rejects_on_a_clean_hospital(silver: dict[str, Any], hospital: Path) -> None:
    assert set(_systems(hospital).values()) >= {"fhir", "csv"}
    assert silver["rejects"] == []


def test_patients_match_truth_source_ids(silver: dict[str, Any], hospital: Path) -> None:
    ids = _truth(hospital, "source_ids")
    for system in ("fhir", "csv"):
        truth = ids[ids["source_system"] == system]
        pats = silver[system]["silver.patient"]
        # FHIR: the Patient id; the site's own number is its first identifier's value
        if system == "fhir":
            got = [
                (r.institution_code, r.patient_id.removeprefix("pat-")) for r in pats.itertuples()
            ]
            assert all(
                p.startswith("pat-") and p[4:] in ids.values()
                for p, ids in zip(pats["patient_id"], pats["identifiers"], strict=True)
            )
        else:
            got = list(zip(pats["institution_code"], pats["patient_id"], strict=True))
        _score(
            f"{system} patient",
            set(zip(truth["institution_code"], truth["source_id"], strict=True)),
            got,
        )


def _person_of(silver: dict[str, Any], hospital: Path, system: str) -> dict[Any, str]:
    """(institution, silver patient_id) -> truth person_id."""
    ids = _truth(hospital, "source_ids")
    ids = ids[ids["source_system"] == system]
    prefix = "pat-" if system == "fhir" else ""
    return {(r.institution_code, prefix + r.source_id): r.person_id for r in ids.itertuples()}


def test_encounters(silver: dict[str, Any], hospital: Path) -> None:
    enc = _truth(hospital, "encounters")
    for system, prefix in (("fhir", "enc-"), ("csv", "")):
        truth = enc[enc["source_system"] == system]
        got = silver[system]["silver.encounter"]
        person = _person_of(silver, hospital, system)
        _score(
            f"{system} encounter",
            {
                (r.institution_code, prefix + r.visit_no, _CLASS[r.kind], r.person_id)
                for r in truth.itertuples()
            },
            [
                (
                    r.institution_code,
                    r.encounter_id,
                    r.encounter_class,
                    person.get((r.institution_code, r.patient_id)),
                )
                for r in got.itertuples()
            ],
        )


def _local_codes(hospital: Path) -> dict[tuple[str, str], str]:
    codes = _truth(hospital, "local_codes")
    return {(r.institution_code, r.local_code): r.standard_code for r in codes.itertuples()}


def test_diagnoses(silver: dict[str, Any], hospital: Path) -> None:
    dx = _truth(hospital, "diagnoses")
    systems, local = _systems(hospital), _local_codes(hospital)
    for system, prefix in (("fhir", "cond-"), ("csv", "")):
        truth = dx[dx["institution_code"].map(systems) == system]
        got = silver[system]["silver.diagnosis"]
        person = _person_of(silver, hospital, system)
        vocab = {"fhir": lambda i: "ICD10", "csv": lambda i: f"LOCAL:{i}:DX"}[system]
        assert all(
            v == vocab(i)
            for i, v in zip(got["institution_code"], got["source_vocabulary"], strict=True)
        )
        _score(
            f"{system} diagnosis",
            {
                (r.institution_code, prefix + r.dx_id, r.icd10, r.person_id)
                for r in truth.itertuples()
            },
            [
                (
                    r.institution_code,
                    r.diagnosis_id,
                    r.source_code
                    if system == "fhir"
                    else local.get((r.institution_code, r.source_code)),
                    person.get((r.institution_code, r.patient_id)),
                )
                for r in got.itertuples()
            ],
        )


def test_lab_results(silver: dict[str, Any], hospital: Path) -> None:
    labs = _truth(hospital, "labs")
    local = _local_codes(hospital)
    for system in ("fhir", "csv"):
        truth = labs[labs["source_system"] == system]
        got = silver[system]["silver.lab_result"]
        person = _person_of(silver, hospital, system)
        _score(
            f"{system} lab_result",
            {
                (
                    r.institution_code,
                    r.record_id,
                    r.loinc,
                    round(r.reported_value, 3),
                    r.reported_unit,
                    r.person_id,
                )
                for r in truth.itertuples()
            },
            [
                (
                    r.institution_code,
                    r.result_id,
                    r.test_source_code
                    if system == "fhir"
                    else local.get((r.institution_code, r.test_source_code)),
                    round(r.value_as_number, 3),
                    r.unit_source,
                    person.get((r.institution_code, r.patient_id)),
                )
                for r in got.itertuples()
            ],
        )
        if system == "fhir":
            assert set(got["test_source_vocabulary"]) == {"LOINC"}
            assert got["test_local_code"].notna().all()


def test_medication_orders(silver: dict[str, Any], hospital: Path) -> None:
    meds = _truth(hospital, "medications")
    systems, local = _systems(hospital), _local_codes(hospital)
    for system, prefix in (("fhir", "mr-"), ("csv", "")):
        truth = meds[meds["institution_code"].map(systems) == system]
        got = silver[system]["silver.medication_order"]
        person = _person_of(silver, hospital, system)
        _score(
            f"{system} medication_order",
            {
                (r.institution_code, prefix + r.med_id, r.atc, r.dose, r.unit, r.person_id)
                for r in truth.itertuples()
            },
            [
                (
                    r.institution_code,
                    r.medication_order_id,
                    r.drug_source_code
                    if system == "fhir"
                    else local.get((r.institution_code, r.drug_source_code)),
                    r.dose,
                    r.dose_unit,
                    person.get((r.institution_code, r.patient_id)),
                )
                for r in got.itertuples()
            ],
        )
        if system == "csv":
            freq = {
                m: (f, d)
                for m, f, d in zip(truth["med_id"], truth["freq"], truth["days"], strict=True)
            }
            for r in got.itertuples():
                assert (r.frequency, r.days_supply) == freq[r.medication_order_id]


# --- Synthea bulk export (../shared/refdata/fhir-bulk-synthea) -------------------------
MAPPED = {
    "Patient": "silver.patient",
    "Encounter": "silver.encounter",
    "Condition": "silver.diagnosis",
    "MedicationRequest": "silver.medication_order",
    "Procedure": "silver.procedure",
    "Organization": "silver.org",
    "Practitioner": "silver.provider",
    "DocumentReference": "silver.note",
}


@pytest.mark.slow
def test_synthea_bulk_export_lands_with_counts_equal_to_resources(
    spark: Any, refdata: Path, tmp_path: Path
) -> None:
    src = refdata / "fhir-bulk-synthea"
    # the landing layout: <root>/fhir/<institution>/<files>; the export log is not a resource
    root = tmp_path / "landing"
    site = root / "fhir" / "SYNTHEA"
    site.mkdir(parents=True)
    present: Counter[str] = Counter()
    for f in sorted(src.glob("*.ndjson")):
        if f.name == "log.ndjson":
            continue
        (site / f.name).symlink_to(f)
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                present[json.loads(line)["resourceType"]] += 1
    bronze = bronze_from(spark, root, "fhir", fhir.parse_resources)
    landed = {
        r["resource_type"]: r["count"] for r in bronze.groupBy("resource_type").count().collect()
    }
    assert landed == dict(present)
    out = transform_fhir(bronze)
    assert out.rejects is not None
    assert out.rejects.count() == 0
    counts = {table: out.rows[table].count() for table in MAPPED.values()}
    print("per type:", dict(sorted(present.items())), "silver:", counts)
    for rtype, table in MAPPED.items():
        assert counts[table] == present[rtype], rtype
    # every reference a patient-scoped row carries resolves to a Patient in the export
    patients = {r.patient_id for r in out.rows["silver.patient"].select("patient_id").collect()}
    for table in ("silver.encounter", "silver.diagnosis", "silver.medication_order", "silver.note"):
        ids = {r.patient_id for r in out.rows[table].select("patient_id").distinct().collect()}
        assert ids <= patients, table
    enc = out.rows["silver.encounter"]
    assert enc.where(F.col("encounter_class").isNull()).count() == 0
    assert enc.where(F.col("start_at").isNull()).count() == 0
    dx = out.rows["silver.diagnosis"]
    assert {r.source_vocabulary for r in dx.select("source_vocabulary").distinct().collect()} == {
        "SNOMED"
    }
    meds = out.rows["silver.medication_order"]
    assert meds.where(F.col("drug_source_vocabulary") == "RXNORM").count() > 0
    notes = out.rows["silver.note"]
    assert (
        notes.where((F.col("char_count") > 0) & (F.col("language") == "en")).count()
        == present["DocumentReference"]
    )
