"""FHIR R4 NDJSON landing: Spark (local[2]) vs DuckDB (2 threads) reading the same files.

``python -m benchmarks bench_fhir_landing`` or
``python -m benchmarks.bench_fhir_landing [--resources N] [--per-file K]``.

The same NDJSON files (Patient, Encounter, Observation and Condition resources of a
member site, ``--per-file`` lines each) are read three ways, the warm run of three reported:

* Spark: the bronze parse (:func:`lakehouse.sources.fhir.parse_resources`: lines split,
  each checked to be a JSON object with a resourceType, type and id extracted, the raw JSON
  and lineage kept), evaluated into a no-op sink;
* DuckDB (the peer): ``read_ndjson_objects`` with the file name, type and id extracted and
  the JSON kept, materialized into a table of an on-disk database (what a landing keeps);
* Spark's floor (:func:`benchmarks.landing.spark_floor`): the files read and split into
  lines, the JSON-looking ones counted, nothing else: the bound on any Spark landing here;
* Delta's floor (:func:`benchmarks.landing.delta_floor`): the same lines appended as (path,
  raw JSON) to an existing Delta table and a report row to another, two commits, the best
  of the three runs: the bound on any landing that keeps its records and report in Delta;
* the required floor (:func:`benchmarks.landing.required_floor`): what issue #4 requires of
  any landing and nothing more: each file hashed (SHA-256), its lines appended with their
  lineage, type, id and raw JSON, a manifest row per file and a report row, three commits,
  best of three: the bound on any landing that meets the issue;
* then the whole Spark landing (``jobs.ingest.run``: discovery, SHA-256 of every file, the
  manifest, quarantine and the Delta MERGE into ``bronze.fhir_resources``): first of a
  small delivery (``--warmup`` resources of another site: the run that creates the tables
  and warms the JVM, reported as the cold landing), then of the measured files, moved into
  the landing folder afterwards (a running pipeline's next delivery).

Prints MB/s of each and the ratios Spark/DuckDB; issue #4's target is >= 0.5x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def resource(i: int) -> dict[str, Any]:
    """One resource of a small synthetic member site (four kinds, realistic sizes)."""
    patient = f"pat-{i // 40:07d}"
    kind = i % 4
    if kind == 0:
        return {
            "resourceType": "Patient", "id": patient,
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.9", "value": f"MR{i:09d}"}],
            "name": [{"family": "王", "given": [f"测试{i % 997}"], "text": f"王测试{i % 997}"}],
            "gender": "female" if i % 2 else "male", "birthDate": "1970-01-01",
            "address": [{"city": "北京市", "district": "海淀区", "line": [f"学院路{i % 300}号"]}],
        }  # fmt: skip
    if kind == 1:
        return {
            "resourceType": "Encounter", "id": f"enc-{i:09d}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "AMB"},
            "subject": {"reference": f"Patient/{patient}"},
            "period": {"start": "2024-01-02T08:00:00+08:00", "end": "2024-01-02T09:00:00+08:00"},
            "serviceProvider": {"reference": "Organization/H0002"},
        }  # fmt: skip
    if kind == 2:
        return {
            "resourceType": "Observation", "id": f"obs-{i:09d}", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4",
                                 "display": "Hemoglobin A1c/Hemoglobin.total in Blood"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-01-02T08:30:00+08:00",
            "valueQuantity": {"value": 5 + i % 50 / 10, "unit": "%",
                              "system": "http://unitsofmeasure.org", "code": "%"},
        }  # fmt: skip
    return {
        "resourceType": "Condition", "id": f"cond-{i:09d}",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9",
                             "display": "Type 2 diabetes mellitus without complications"}]},
        "subject": {"reference": f"Patient/{patient}"}, "recordedDate": "2024-01-02",
    }  # fmt: skip


def write_files(
    root: Path, resources: int, per_file: int, *, site: str = "H0002", first: int = 0
) -> tuple[list[Path], int]:
    folder = root / "fhir" / site
    folder.mkdir(parents=True, exist_ok=True)
    paths, size = [], 0
    for start in range(0, resources, per_file):
        n = min(per_file, resources - start)
        text = "\n".join(
            json.dumps(resource(first + start + k), ensure_ascii=False, separators=(",", ":"))
            for k in range(n)
        )
        path = folder / f"resources_{(first + start) // per_file:05d}.ndjson"
        path.write_bytes((text + "\n").encode())
        size += path.stat().st_size
        paths.append(path)
    return paths, size


def spark_parse(spark: Any, folder: Path, root_uri: str) -> tuple[int, float]:
    from benchmarks.landing import landing_files
    from lakehouse.sources.fhir import parse_resources

    t0 = time.perf_counter()
    files = landing_files(spark, folder, root_uri, "fhir")
    records = parse_resources(files).where("error_name is null")
    records.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - t0
    return int(records.count()), seconds


def fields(raw: Any) -> list[Any]:
    """The fields DuckDB extracts too (type and id), from one parse of the line."""
    from pyspark.sql import functions as F

    head = F.from_json(raw, "struct<resourceType:string,id:string>", {"mode": "PERMISSIVE"})
    return [head["resourceType"].alias("resource_type"), head["id"].alias("resource_id")]


def duckdb_read(folder: Path, db: Path) -> tuple[int, float]:
    import duckdb

    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("SET threads = 2")
    pattern = str(folder / "*.ndjson")
    con.execute(
        "CREATE TABLE resources AS SELECT filename AS file_path, "
        "json->>'resourceType' AS resource_type, json->>'id' AS resource_id, "
        "json::VARCHAR AS raw_json "
        f"FROM read_ndjson_objects('{pattern}', filename = true)"
    )
    row = con.execute("SELECT count(*) FROM resources").fetchone()
    con.close()
    seconds = time.perf_counter() - t0
    return int(row[0]) if row else 0, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fhir_landing", description=__doc__)
    parser.add_argument("--resources", type=int, default=200_000)
    parser.add_argument("--per-file", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--no-landing", action="store_true", help="skip the Delta landing run")
    args = parser.parse_args(argv)

    from lakehouse.settings import Settings
    from lakehouse.spark import build_spark

    tmp = Path(tempfile.mkdtemp(prefix="bench_fhir_"))
    try:
        landing, staging = tmp / "landing", tmp / "staging"
        paths, size = write_files(staging, args.resources, args.per_file)
        (landing / "fhir").mkdir(parents=True)
        mb = size / 1e6
        cfg = Settings(  # type: ignore[call-arg]
            data_dir=tmp / "data",
            spark={"master": "local[2]", "shuffle_partitions": 2, "ui_enabled": False},
            ingest={"landing_root": landing, "sources": ["fhir"]},
        )
        spark = build_spark(cfg)
        from benchmarks.landing import (
            delta_floor,
            delta_floor_tables,
            required_floor,
            required_floor_tables,
            spark_floor,
        )

        root_uri = "file:" + str(staging)
        folder = staging / "fhir"
        # Alternated, warm runs: the machine's other load falls on both alike.
        spark_runs, duck_runs, floor_runs, delta_runs, required_runs = [], [], [], [], []
        tables = delta_floor_tables(spark, tmp / "delta_floor")
        required = required_floor_tables(spark, tmp / "required_floor", fields)
        for _ in range(3):
            spark_runs.append(spark_parse(spark, folder, root_uri))
            duck_runs.append(duckdb_read(folder / "H0002", tmp / "peer.duckdb"))
            floor_runs.append(spark_floor(spark, folder, "\n", r"^\{"))
            delta_runs.append(delta_floor(spark, folder, "\n", r"^\{", tables))
            required_runs.append(required_floor(spark, folder, "\n", r"^\{", fields, required))
        n_spark, s_spark = spark_runs[-1]
        n_duck, s_duck = duck_runs[-1]
        n_floor, s_floor = floor_runs[-1]
        n_delta, s_delta = min(delta_runs, key=lambda run: run[1])
        n_required, s_required = min(required_runs, key=lambda run: run[1])
        assert n_spark == n_duck == n_floor == n_delta == n_required == args.resources, (
            n_spark,
            n_duck,
            n_floor,
            n_delta,
            n_required,
        )
        print(f"resources: {args.resources:,} in {len(paths)} NDJSON files, {mb:.1f} MB")
        print(
            f"spark parse (cold, warm): {spark_runs[0][1]:.1f}s, {s_spark:.1f}s "
            f"-> {mb / s_spark:.1f} MB/s warm"
        )
        print(
            f"duckdb read_ndjson_objects into a table (cold, warm): {duck_runs[0][1]:.1f}s, "
            f"{s_duck:.1f}s -> {mb / s_duck:.1f} MB/s warm"
        )
        print(f"ratio spark/duckdb: {s_duck / s_spark:.2f}x (target >= 0.5x)")
        print(
            f"spark floor (read, split into lines, count; warm): {s_floor:.1f}s "
            f"-> {mb / s_floor:.1f} MB/s; ratio to duckdb: {s_duck / s_floor:.2f}x"
        )
        print(
            f"delta floor (resources + a report row appended to existing Delta tables, "
            f"2 commits; warm, best of 3): {s_delta:.2f}s -> {mb / s_delta:.1f} MB/s; "
            f"ratio to duckdb: {s_duck / s_delta:.2f}x"
        )
        print(
            f"required floor (files hashed, lines + lineage + type/id, a manifest row per "
            f"file and a report row; 3 commits; warm, best of 3): {s_required:.2f}s -> "
            f"{mb / s_required:.1f} MB/s; ratio to duckdb: {s_duck / s_required:.2f}x"
        )
        if not args.no_landing:
            from jobs import ingest

            _, warm_size = write_files(
                landing, args.warmup, args.per_file, site="H0003", first=args.resources
            )
            t0 = time.perf_counter()
            report = ingest.run(spark, cfg, source="fhir").source("fhir")
            cold = time.perf_counter() - t0
            print(
                f"cold landing (tables created, JVM warming): {report.records_landed:,} "
                f"resources, {warm_size / 1e6:.1f} MB in {cold:.1f}s"
            )
            shutil.move(str(staging / "fhir" / "H0002"), str(landing / "fhir" / "H0002"))
            t0 = time.perf_counter()
            report = ingest.run(spark, cfg, source="fhir").source("fhir")
            seconds = time.perf_counter() - t0
            assert report.records_landed == args.resources, report.records_landed
            print(
                f"landing (hash, manifest, Delta MERGE): {report.records_landed:,} "
                f"resources in {seconds:.1f}s -> {mb / seconds:.1f} MB/s; "
                f"ratio to duckdb: {s_duck / seconds:.2f}x"
            )
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
