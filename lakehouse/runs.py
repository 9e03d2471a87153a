"""Recording runs of jobs and stages in ``ops.job_runs``.

    with job_run(spark, cfg, "bronze.hl7v2") as run:
        run.count("messages_landed", n)

A failed run is recorded with its catalogued code, then the exception propagates.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from lakehouse import __version__
from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.settings import Settings
from lakehouse.tables.ops.runs import JOB_RUNS
from lakehouse.tables.writer import append

logger = logging.getLogger(__name__)


@dataclass
class JobRun:
    """A run in progress: its id, its job name and the counts it reports."""

    job: str
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    counts: dict[str, int] = field(default_factory=dict)
    status: str = "running"
    duration_s: float = 0.0
    error_code: str | None = None
    error_message: str | None = None

    def count(self, name: str, value: int) -> None:
        """Add ``value`` to the named count."""
        self.counts[name] = self.counts.get(name, 0) + int(value)


@contextmanager
def job_run(spark: SparkSession, cfg: Settings, job: str) -> Iterator[JobRun]:
    """Time a run, and record it in ``ops.job_runs`` whether it succeeds or fails."""
    run = JobRun(job)
    t0 = time.perf_counter()
    logger.info("run %s of %s started", run.run_id, job)
    try:
        yield run
        run.status = "succeeded"
    except LakehouseError as exc:
        run.status, run.error_code, run.error_message = "failed", exc.code.id, exc.render()
        raise
    except Exception as exc:
        run.status, run.error_code = "failed", ErrorCode.JOB_FAILED.id
        run.error_message = f"Stage {job} failed: {type(exc).__name__}."
        raise
    finally:
        run.duration_s = time.perf_counter() - t0
        _record(spark, cfg, run)
        logger.info(
            "run %s of %s %s in %.1fs: %s", run.run_id, job, run.status, run.duration_s, run.counts
        )


def _record(spark: SparkSession, cfg: Settings, run: JobRun) -> None:
    row = {
        "run_id": run.run_id,
        "job": run.job,
        "status": run.status,
        # Stored as naive UTC-equivalent instants; Spark renders them in the session zone.
        "started_at": run.started_at,
        "finished_at": datetime.now(UTC),
        "duration_s": run.duration_s,
        "counts": run.counts,
        "error_code": run.error_code,
        "error_message": run.error_message,
        "lakehouse_version": __version__,
        "spark_master": cfg.spark.master,
    }
    try:
        # A run is recorded once, under a fresh UUID4: no stored row can match it, so a
        # blind append stores what an insert-only MERGE would, without the MERGE's scan and
        # join of the table, and never conflicts with another run's record.
        append(spark, JOB_RUNS, spark.createDataFrame([row], JOB_RUNS.schema), fresh_keys=True)
    except Exception:
        # Never hide the run's own outcome behind a failure to record it.
        logger.exception("could not record run %s of %s", run.run_id, run.job)
