"""The landing's file reader as the benchmarks time it: a folder's files with the lineage
columns the bronze parsers take (path, SHA-256, source, institution, size, content)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def landing_files(spark: Any, folder: Path, root_uri: str, source: str) -> Any:
    """The files under ``folder`` as ``jobs.ingest`` reads them for ``source``."""
    from pyspark.sql import functions as F

    from lakehouse.sources.files import institution_of

    return (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(str(folder))
        .select(
            F.col("path").alias("file_path"),
            F.sha2("content", 256).alias("file_sha256"),
            F.lit(source).alias("source_system"),
            institution_of(F.col("path"), root_uri, source).alias("institution_code"),
            F.col("length").alias("size_bytes"),
            "content",
        )
    )


def spark_floor(spark: Any, folder: Path, separator: str, keep: str) -> tuple[int, float]:
    """The least any Spark landing of ``folder`` does: read each file, split its text on
    ``separator`` (a regex) and count the pieces that start with ``keep`` (a regex), into a
    no-op sink. No hashing, no checks, no field extraction, no write: what Spark itself
    costs on this machine, so a target above it is out of reach for any Spark code."""
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    pieces = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(str(folder))
        .select(F.explode(F.split(F.col("content").cast("string"), separator)).alias("piece"))
        .where(F.col("piece").rlike(keep))
    )
    pieces.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - t0
    return int(pieces.count()), seconds
