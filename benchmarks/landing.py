"""The landing's file reader as the benchmarks time it: a folder's files with the lineage
columns the bronze parsers take (path, SHA-256, source, institution, size, content)."""

from __future__ import annotations

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
