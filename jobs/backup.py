"""Backups as a job: ``lakehouse backup`` and the demo's ``backup`` stage (docs/operations.md).

:func:`run` takes a full (or incremental) backup of every Delta table and the local state
(:func:`lakehouse.backup.take_backup`: data files pinned at a Delta version plus the log,
the metastore, MLflow, terminology and audit tables, a manifest of SHA-256 checksums) and
records it as job ``backup`` in ``ops.job_runs``, where the operations console and
``/metrics`` read the last backup run.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakehouse.backup import BackupReport, take_backup
from lakehouse.runs import job_run
from lakehouse.settings import Settings


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    tables: list[str] | None = None,
    incremental: bool = False,
    include_secrets: bool = False,
) -> BackupReport:
    """One backup, recorded as job ``backup`` with its counts."""
    with job_run(spark, cfg, "backup") as rec:
        report = take_backup(
            spark, cfg, tables=tables, incremental=incremental, include_secrets=include_secrets
        )
        rec.count("tables", report.tables)
        rec.count("files_copied", report.files_copied)
        rec.count("bytes_copied", report.bytes_copied)
        rec.count("files_reused", report.files_reused)
    return report


def stage(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """The demo's stage: a full backup of the demo lakehouse (kept by ``backup.keep_full``)."""
    report = run(spark, cfg)
    return {
        "tables": report.tables,
        "files_copied": report.files_copied,
        "bytes_copied": report.bytes_copied,
    }
