"""HL7 v2 ORU landing + MSH field extraction: Spark (local[2]) vs python-hl7 in 2 processes.

``python -m benchmarks bench_hl7_landing`` or
``python benchmarks/bench_hl7_landing.py --messages 200000``.

The same ORU^R01 messages (FHS/BHS batch files, CR separators) are split and their MSH
fields extracted by :func:`lakehouse.sources.hl7v2.parse_messages` (Spark functions only,
evaluated into a no-op sink; the warm run of three is reported) and by ``python-hl7``
(``hl7.split_file`` + ``hl7.parse`` + the same fields) in a pool of two processes. Then the
whole landing (``jobs.ingest.run``: hashing, manifest, Delta MERGE) is timed: first of a
small delivery (``--warmup`` messages of another institution: the run that creates the
tables and warms the JVM, reported as the cold landing), then of the measured files, moved
into the landing folder afterwards (a running pipeline's next delivery). Also
timed: Spark's floor (:func:`benchmarks.landing.spark_floor`: files read, split on CR, MSH
segments counted, nothing else), the bound on any Spark landing on this machine, and Delta's
floor (:func:`benchmarks.landing.delta_floor`: the messages appended as (path, raw text) to
an existing Delta table and a report row to another, two commits, best of three warm runs),
the bound on any landing that keeps its records and its run report in Delta; and the
required floor (:func:`benchmarks.landing.required_floor`: what issue #4 requires of any
landing and nothing more: each file hashed (SHA-256), its messages appended with their
lineage, the seven MSH fields python-hl7 extracts and the raw text, a manifest row per file
and a report row, three commits, best of three), the bound on any landing that meets the
issue.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def oru(i: int) -> str:
    return "\r".join(
        [
            f"MSH|^~\\&|LIS|H0001|EMR|H0001|20240102030405||ORU^R01^ORU_R01|C{i:09d}|P|2.5"
            "|||||||UNICODE UTF-8",
            f"PID|1||{i:08d}^^^H0001^MR||TEST^PATIENT{i % 97}||19800101|F",
            f"OBR|1|{i}|{i}|GLU^Glucose|||20240102030000",
            f"OBX|1|NM|2345-7^Glucose^LN||{4 + i % 7}.{i % 10}|mmol/L|3.9-6.1|N|||F",
            f"OBX|2|NM|2823-3^Potassium^LN||{3 + i % 3}.{i % 10}|mmol/L|3.5-5.5|N|||F",
        ]
    )


def write_files(
    root: Path, messages: int, per_file: int, *, site: str = "H0001", first: int = 0
) -> list[Path]:
    folder = root / "lis" / site
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, messages, per_file):
        n = min(per_file, messages - start)
        body = "\r".join(oru(first + start + k) for k in range(n))
        text = f"FHS|^~\\&|LIS\rBHS|^~\\&|LIS\r{body}\rBTS|{n}\rFTS|1\r"
        path = folder / f"ORU_{start // per_file:05d}.hl7"
        path.write_bytes(text.encode())
        paths.append(path)
    return paths


def _python_hl7_file(path: str) -> int:
    import hl7

    text = Path(path).read_bytes().decode()  # not read_text: it turns CR into LF
    lines = [s for s in text.split("\r") if s and not s.startswith(("FHS", "BHS", "BTS", "FTS"))]
    n = 0
    for msg_text in hl7.split_file("\r".join(lines)):
        msg = hl7.parse(msg_text)
        msh = msg.segment("MSH")
        fields = (msh[3], msh[4], msh[7], msh[9], msh[10], msh[12], msh[18])
        n += bool(fields)
    return n


def fields(raw: Any) -> list[Any]:
    """The MSH fields python-hl7 extracts here (MSH-3, 4, 7, 9, 10, 12, 18), from one split
    of the message's first segment (MSH-n is the (n-1)th piece: MSH-1 is the separator)."""
    from pyspark.sql import functions as F

    msh = F.split(F.substring_index(raw, "\r", 1), r"\|")
    return [F.get(msh, n - 1).alias(f"msh_{n}") for n in (3, 4, 7, 9, 10, 12, 18)]


def python_hl7(paths: list[Path]) -> tuple[int, float]:
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        n = sum(pool.map(_python_hl7_file, [str(p) for p in paths]))
    return n, time.perf_counter() - t0


def spark_parse(spark: Any, folder: Path, root_uri: str) -> tuple[int, float]:
    from benchmarks.landing import landing_files
    from lakehouse.sources.hl7v2 import parse_messages

    t0 = time.perf_counter()
    files = landing_files(spark, folder, root_uri, "lis")
    records = parse_messages(files)
    landed = records.where("error_name is null")
    landed.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - t0
    return int(landed.count()), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_hl7_landing", description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--per-file", type=int, default=1_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--no-landing", action="store_true", help="skip the Delta landing run")
    args = parser.parse_args(argv)

    from lakehouse.settings import Settings
    from lakehouse.spark import build_spark

    tmp = Path(tempfile.mkdtemp(prefix="bench_hl7_"))
    try:
        landing, staging = tmp / "landing", tmp / "staging"
        paths = write_files(staging, args.messages, args.per_file)
        (landing / "lis").mkdir(parents=True)
        cfg = Settings(  # type: ignore[call-arg]
            data_dir=tmp / "data",
            spark={"master": "local[2]", "shuffle_partitions": 2, "ui_enabled": False},
            ingest={"landing_root": landing, "sources": ["lis"]},
        )
        spark = build_spark(cfg)
        root_uri = "file:" + str(staging)
        from benchmarks.landing import (
            delta_floor,
            delta_floor_tables,
            required_floor,
            required_floor_tables,
            spark_floor,
        )

        runs = [spark_parse(spark, staging / "lis", root_uri) for _ in range(3)]
        floors = [spark_floor(spark, staging / "lis", "\r", "^MSH") for _ in range(3)]
        tables = delta_floor_tables(spark, tmp / "delta_floor")
        deltas = [
            delta_floor(spark, staging / "lis", r"\r(?=MSH\|)", "^MSH", tables) for _ in range(3)
        ]
        n_spark, s_spark = runs[-1]
        n_floor, s_floor = floors[-1]
        required = required_floor_tables(spark, tmp / "required_floor", fields)
        requireds = [
            required_floor(spark, staging / "lis", r"\r(?=MSH\|)", "^MSH", fields, required)
            for _ in range(3)
        ]
        n_delta, s_delta = min(deltas, key=lambda run: run[1])
        n_required, s_required = min(requireds, key=lambda run: run[1])
        n_py, s_py = python_hl7(paths)
        assert n_spark == n_py == n_floor == n_delta == n_required == args.messages, (
            n_spark,
            n_py,
            n_floor,
            n_delta,
            n_required,
        )
        spark_rate, py_rate = n_spark / s_spark, n_py / s_py
        print(f"messages: {args.messages} in {len(paths)} batch files")
        print(
            f"spark split+extract (cold, warm): {runs[0][1]:.1f}s, {s_spark:.1f}s "
            f"-> {spark_rate:,.0f} msg/s warm"
        )
        print(f"python-hl7, 2 processes:         {s_py:.1f}s -> {py_rate:,.0f} msg/s")
        print(f"ratio spark/python-hl7: {spark_rate / py_rate:.1f}x (target >= 20x)")
        print(
            f"spark floor (read, split on CR, count MSH; warm): {s_floor:.1f}s -> "
            f"{n_floor / s_floor:,.0f} msg/s; ratio to python-hl7: "
            f"{n_floor / s_floor / py_rate:.1f}x"
        )
        print(
            f"delta floor (messages + a report row appended to existing Delta tables, 2 commits; "
            f"warm, best of 3): {s_delta:.2f}s -> {n_delta / s_delta:,.0f} msg/s; ratio to "
            f"python-hl7: {n_delta / s_delta / py_rate:.1f}x"
        )
        print(
            f"required floor (files hashed, messages + lineage + 7 MSH fields, a manifest row "
            f"per file and a report row; 3 commits; warm, best of 3): {s_required:.2f}s -> "
            f"{n_required / s_required:,.0f} msg/s; ratio to python-hl7: "
            f"{n_required / s_required / py_rate:.1f}x"
        )
        if not args.no_landing:
            from jobs import ingest

            write_files(landing, args.warmup, args.per_file, site="H0002", first=args.messages)
            t0 = time.perf_counter()
            report = ingest.run(spark, cfg, source="lis").source("lis")
            print(
                f"cold landing (tables created, JVM warming): {report.records_landed:,} "
                f"messages in {time.perf_counter() - t0:.1f}s"
            )
            shutil.move(str(staging / "lis" / "H0001"), str(landing / "lis" / "H0001"))
            t0 = time.perf_counter()
            report = ingest.run(spark, cfg, source="lis").source("lis")
            seconds = time.perf_counter() - t0
            assert report.records_landed == args.messages, report.records_landed
            print(
                f"full landing (hash, manifest, Delta MERGE): {report.records_landed} "
                f"messages in {seconds:.1f}s -> {report.records_landed / seconds:,.0f} msg/s; "
                f"ratio to python-hl7 parsing: {report.records_landed / seconds / py_rate:.1f}x"
            )
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
