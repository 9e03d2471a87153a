"""Round trip (issue #14 acceptance): a Bulk ``$export`` of the serving tests' small hospital,
re-imported through the project's own FHIR ingestion (the bronze FHIR landing's file reader
and resource parser, ``lakehouse.sources``, then the member-site silver transform
``lakehouse.silver.fhir.transform_fhir``), reproduces the silver row counts of every type
both sides map: patients, encounters, diagnoses, lab results, vital signs, medication
orders and procedures. The exporter is the site-scoped ``nurse_a`` (the whole institution).

Slow (an export of seven types and the silver transform on the test run's Spark session):
``make test-all``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from lakehouse.silver.fhir import transform_fhir
from lakehouse.sources.fhir import parse_resources
from lakehouse.sources.files import read_files
from tests.integration.serving.conftest import PASSWORD, Service, client

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TYPES = "Patient,Encounter,Condition,Observation,MedicationRequest,Procedure"


def _export(service: Service, token: str, folder: Path) -> list[dict[str, Any]]:
    """Run an institution-level export and download its files into ``folder``."""
    with client(service, token) as c:
        r = c.get("/fhir/r4/$export", params={"_type": TYPES}, headers={"Prefer": "respond-async"})
        assert r.status_code == 202, r.text
        status = r.headers["content-location"]
        deadline = time.monotonic() + 900
        while (r := c.get(status)).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(1)
        assert r.status_code == 200, r.text
        outputs: list[dict[str, Any]] = r.json()["output"]
        for out in outputs:
            (folder / out["url"].rsplit("/", 1)[1]).write_bytes(c.get(out["url"]).content)
    return outputs


def test_bulk_export_reimported_through_the_fhir_ingestion_gives_the_same_counts(
    service: Service, tmp_path: Path
) -> None:
    with client(service) as c:
        login = c.post("/api/login", json={"username": "nurse_a", "password": PASSWORD})
    token = login.json()["token"]
    root = tmp_path / "landing"
    folder = root / "fhir" / "H1"  # the landing layout: <root>/<source>/<institution>/
    folder.mkdir(parents=True)
    _export(service, token, folder)

    spark = service.spark
    found = [
        (f"file:{p}", p.stat().st_size, int(p.stat().st_mtime * 1000))
        for p in sorted(folder.glob("*.ndjson"))
    ]
    files = read_files(spark, found, source="fhir", root_uri=f"file:{root}")
    records = parse_resources(files)
    assert records.where(F.col("error_name").isNotNull()).count() == 0
    bronze = records.where(F.col("error_name").isNull()).withColumn(
        "ingested_at", F.current_timestamp()
    )
    out = transform_fhir(bronze)
    assert out.rejects is None or out.rejects.count() == 0

    t = service.tables
    pairs = {
        "silver.patient": t.patient,
        "silver.encounter": t.encounter,
        "silver.diagnosis": t.diagnosis,
        "silver.lab_result": t.lab_result,
        "silver.vital_sign": t.vital_sign,
        "silver.medication_order": t.medication_order,
        "silver.procedure": t.procedure,
    }
    for silver, spec in pairs.items():
        live = spark.table(spec.name).where("NOT coalesce(is_deleted, false)")
        keys = ("institution_code", "patient_id") if silver == "silver.patient" else spec.keys
        expected = live.select(*keys).distinct().count()
        got = out.rows[silver].where("NOT coalesce(is_deleted, false)").count()
        assert (silver, got) == (silver, expected)
        assert expected > 0
