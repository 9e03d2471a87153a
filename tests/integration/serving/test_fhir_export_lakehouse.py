"""Round trip on the synthetic hospital (issue #14 acceptance): a Bulk ``$export`` of one
lakehouse, re-imported through the project's own FHIR ingestion into a second lakehouse,
reproduces the silver counts.

Everything runs through the product's entry points, each in its own process:

1. Lakehouse A: ``lakehouse demo --stage foundation --stage synth --stage ingest --stage
   vocab --stage silver`` builds a small synthetic hospital (the main hospital H0001 with
   HIS, LIS, CDA, notes and PACS; the FHIR member A0001; the CSV member A0002).
2. ``lakehouse accounts create`` makes an account of the shipped ``exporter`` role (ADR 0032:
   an interface account scoped by institution, second factor required) granted every
   institution of the hospital; ``lakehouse serve`` runs on A with the default policy and the
   exporter signs in with password and TOTP, runs a system-level ``$export`` of every type
   over HTTPS and downloads the NDJSON files. Every line validates
   with ``fhir.resources`` (R4B models).
3. Lakehouse B (a fresh data folder): each line goes to ``landing/fhir/<institution>/``, the
   institution being the one the resource's ``urn:lakehouse:<institution>:...`` identifier
   names; ``lakehouse vocab load``, ``lakehouse ingest --source fhir`` and ``lakehouse
   silver`` run on B.
4. Per silver table a FHIR type maps to, B holds exactly as many rows as A has live rows
   (``is_deleted`` false: the export's scope; ``silver.patient`` counts patients, (institution,
   patient id), since a patient several sources sent is one Patient); nothing quarantined,
   nothing rejected; values are compared row by row (codes, lab values and units, times,
   the visit, note text).

Not carried by the round trip, by design: ``silver.imaging_study`` / ``imaging_series``
(ImagingStudy and DiagnosticReport land in bronze but the FHIR ingestion maps neither,
docs/silver.md) and the tables no FHIR type is built from (``silver.dept``,
``silver.encounter_transfer``, ``silver.clinical_document``, ``silver.note_deid``...).
``silver.vital_sign`` and ``silver.org`` are empty in the synthetic hospital (0 = 0 here).
In B every row's source system is ``fhir`` and its record id is A's FHIR id (``<institution>-<source
system>-<source id>``); references to an Encounter are logical (the visit number), so in B a
result's ``encounter_id`` is the visit number while the Encounter's own id is the FHIR id.

Slow (two lakehouses built by six processes): ``make test-all``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pyspark.sql import DataFrame, SparkSession

from lakehouse.settings import Settings
from serving.fhir.ids import encode, patient_id
from tests.support.fhir_export import bulk_export, land_export, served
from tests.support.processes import lakehouse_env

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"
PATIENTS = 12
PASSWORD = "Correct-Horse-42"
STAGES = ("foundation", "synth", "ingest", "vocab", "silver")

#: silver table -> its record id column: the tables a FHIR type is built from and mapped
#: back by the FHIR ingestion (docs/fhir.md, docs/silver.md).
ROUND_TRIP = {
    "patient": "patient_id",
    "encounter": "encounter_id",
    "diagnosis": "diagnosis_id",
    "lab_result": "result_id",
    "vital_sign": "vital_id",
    "medication_order": "medication_order_id",
    "procedure": "procedure_id",
    "note": "note_id",
    "org": "org_code",
    "provider": "provider_id",
}
#: Columns compared row by row (A's value against B's row of the same FHIR id).
VALUES = {
    "encounter": ("encounter_class", "start_at", "end_at"),
    "diagnosis": ("standard_code", "encounter_id", "diagnosed_at"),
    "lab_result": (
        "test_standard_code", "value_std", "unit_std", "collected_at", "encounter_id",
        "abnormal_flag",
    ),
    "vital_sign": ("standard_code", "value_as_number", "measured_at", "encounter_id"),
    "medication_order": ("drug_standard_code", "dose", "dose_unit", "ordered_at", "encounter_id"),
    "procedure": ("standard_code", "performed_at", "encounter_id"),
    "note": ("note_text", "recorded_at", "encounter_id"),
    "org": ("org_name", "org_oid"),
    "provider": ("provider_name", "title"),
}  # fmt: skip


def _run(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None) -> str:
    t0 = time.monotonic()
    done = subprocess.run(
        [str(LAKEHOUSE), *args], env=env, cwd=cwd, input=stdin, capture_output=True,
        text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"lakehouse {' '.join(args[:3])}: {time.monotonic() - t0:.0f} s")
    return done.stdout


def _totp_secret(created: str) -> str:
    """The secret of the ``otpauth://`` URI ``lakehouse accounts create`` prints once."""
    uri = next(w for w in created.split() if w.startswith("otpauth://"))
    return parse_qs(urlsplit(uri).query)["secret"][0]


def _table(spark: SparkSession, data: Path, schema: str, table: str) -> DataFrame | None:
    folder = data / "warehouse" / f"{schema}.db" / table
    if not (folder / "_delta_log").is_dir():
        return None
    return spark.read.format("delta").load(str(folder))


def _live(df: DataFrame) -> DataFrame:
    return df.where("NOT coalesce(is_deleted, false)")


def _fhir_id(table: str, row: dict[str, Any]) -> str:
    """A's row's FHIR id, which is B's record id (docs/fhir.md, Ids)."""
    inst, system, key = row["institution_code"], row["source_system"], row[ROUND_TRIP[table]]
    if table == "patient":
        return patient_id(inst, key)
    return encode(inst, system, "vs", key) if table == "vital_sign" else encode(inst, system, key)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    if hasattr(a, "is_finite"):  # Decimal
        return b is not None and _same(float(a), float(b))
    return bool(a == b)


def compare_silver(
    spark: SparkSession, a: Path, b: Path
) -> tuple[dict[str, tuple[int, int]], dict[str, list[str]]]:
    """Per round-trip table: (A's live rows, B's rows), and the rows whose values differ."""
    counts: dict[str, tuple[int, int]] = {}
    mismatches: dict[str, list[str]] = {}
    for table, key in ROUND_TRIP.items():
        theirs = _table(spark, a, "silver", table)
        ours = _table(spark, b, "silver", table)
        assert theirs is not None, table
        live = _live(theirs)
        if table == "patient":
            expected = live.select("institution_code", key).distinct().count()
        else:
            expected = live.select("institution_code", "source_system", key).distinct().count()
        got = 0 if ours is None else _live(ours).count()
        counts[table] = (expected, got)
        if ours is None or not expected:
            continue
        assert ours.select("source_system").distinct().collect() == [("fhir",)] or not got
        b_rows = {r[key]: r.asDict() for r in _live(ours).collect()}  # tiny: 12 patients
        bad = mismatches.setdefault(table, [])
        for row in (r.asDict() for r in live.collect()):
            fid = _fhir_id(table, row)
            mine = b_rows.get(fid)
            if mine is None:
                bad.append(f"{fid}: missing")
                continue
            if table == "patient":
                continue  # checked below: several sources' rows of a patient are one Patient
            pid = row.get("patient_id")
            if pid is not None and mine["patient_id"] != patient_id(row["institution_code"], pid):
                bad.append(f"{fid}: patient")
            for c in VALUES.get(table, ()):
                if not _same(row[c], mine[c]):
                    bad.append(f"{fid}: {c} {row[c]!r} != {mine[c]!r}")
        if table == "patient":
            sent: dict[str, set[tuple[Any, Any]]] = {}
            for row in (r.asDict() for r in live.collect()):
                pid = patient_id(row["institution_code"], row["patient_id"])
                sent.setdefault(pid, set()).add((row["sex_code"], row["birth_date"]))
            for pid, mine in b_rows.items():
                if (mine["sex_code"], mine["birth_date"]) not in sent.get(pid, set()):
                    bad.append(f"{pid}: sex/birth date not one A holds")
    return counts, mismatches


@pytest.mark.timeout(3600)
def test_a_bulk_export_of_the_synthetic_hospital_reimported_gives_the_same_silver(
    spark: SparkSession, tmp_path: Path
) -> None:
    t_start = time.monotonic()
    env_a = _env_a(tmp_path)
    _run(env_a, tmp_path, "demo", *[x for s in STAGES for x in ("--stage", s)])
    round_trip(spark, tmp_path, env_a, t_start)


QUIET = {"LOG_LEVEL": "WARNING", "SPARK__MASTER": "local[2]"}


def _env_a(tmp_path: Path) -> dict[str, str]:
    return lakehouse_env(
        tmp_path / "a", SYNTH__PATIENTS=str(PATIENTS),
        SECURITY__AUDIT_MAX_BACKLOG_S="900",
        **QUIET,
    )  # fmt: skip


def round_trip(spark: SparkSession, tmp_path: Path, env_a: dict[str, str], t_start: float) -> None:
    """Everything after lakehouse A is built (under ``tmp_path / "a"``)."""
    a, b = tmp_path / "a", tmp_path / "b"
    hospital = json.loads((a / "synthetic" / "manifest.json").read_text(encoding="utf-8"))
    sites = [s["institution_code"] for s in hospital["sites"]]
    assert len(sites) == 3
    institutions = [x for s in sites for x in ("--institution", s)]
    created = _run(env_a, tmp_path, "accounts", "create", "exporter", "--role", "exporter",
                   *institutions, "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip

    # -- the export, over HTTPS from a real `lakehouse serve` on A ------------------------
    exported = tmp_path / "export"
    cfg_a = Settings(home=REPO, data_dir=a)  # type: ignore[call-arg]
    t0 = time.monotonic()
    with served(env_a, cfg_a, tmp_path / "serve.log") as service:
        print(f"lakehouse serve healthy: {time.monotonic() - t0:.0f} s")
        t0 = time.monotonic()
        outputs = bulk_export(
            service, "exporter", PASSWORD, exported, totp_secret=_totp_secret(created)
        )
        print(f"$export and download: {time.monotonic() - t0:.0f} s")
    lines: dict[str, int] = {}
    for path in sorted(exported.glob("*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            resource = json.loads(line)
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            lines[resource["resourceType"]] = lines.get(resource["resourceType"], 0) + 1
    manifest: dict[str, int] = {}
    for out in outputs:
        manifest[out["type"]] = manifest.get(out["type"], 0) + out["count"]
    assert lines == manifest

    # -- lakehouse B: the files landed per institution, ingested, silver ------------------
    landing = tmp_path / "b-landing"
    landed = land_export(exported, landing)
    assert set(landed) == set(sites), landed
    env_b = lakehouse_env(b, INGEST__LANDING_ROOT=str(landing), **QUIET)
    _run(env_b, tmp_path, "vocab", "load")
    _run(env_b, tmp_path, "ingest", "--source", "fhir")
    _run(env_b, tmp_path, "silver")

    bronze = _table(spark, b, "bronze", "fhir_resources")
    assert bronze is not None
    per_type = {
        r["resource_type"]: r["count"] for r in bronze.groupBy("resource_type").count().collect()
    }
    assert per_type == lines  # every exported resource landed once
    quarantine = _table(spark, b, "bronze", "quarantine")
    assert quarantine is None or quarantine.count() == 0
    rejects = _table(spark, b, "ops", "silver_rejects")
    assert rejects is None or rejects.count() == 0

    counts, mismatches = compare_silver(spark, a, b)
    print(f"\nround trip at {PATIENTS} patients (silver table: A live rows, B rows):")
    for table, (expected, got) in counts.items():
        print(f"  silver.{table:18} {expected:6} {got:6}")
    print(f"exported lines per type: {json.dumps(lines, sort_keys=True)}")
    print(f"total {time.monotonic() - t_start:.0f} s")
    assert {t: c for t, c in counts.items() if c[0] != c[1]} == {}
    assert {t: m[:5] for t, m in mismatches.items() if m} == {}
    for table in ("patient", "encounter", "diagnosis", "lab_result", "medication_order", "note"):
        assert counts[table][0] > 0, table  # the synthetic hospital has them
