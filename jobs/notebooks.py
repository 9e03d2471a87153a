"""Run the project's notebooks against the lakehouse and keep executed copies.

Every notebook in ``notebooks/`` runs top to bottom in this process on the job's Spark
session (``lakehouse.notebooks``, ADR 0028) with its default parameters, which name the
tables the demo builds; the executed copy, with its tables and figures, is written to
``<data_dir>/notebooks/<name>`` (it shows data: it stays with the lakehouse's data, never
in git). The training notebook needs the MLflow tracking server: the job starts one for
its run unless one answers. It registers its model as ``<models.name>-notebook`` so the
train stage's champion stays the one the scoring job uses.

All notebooks run even when one fails; then the job raises ``LH-NBK-002`` naming the first
failure (the executed copy carries the traceback).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

TRAINING = "03-train-tabular-mlflow.ipynb"


@dataclass(frozen=True)
class NotebookOutcome:
    name: str
    seconds: float
    figures: int
    copy: Path
    error: str | None = None  # "cell N: ExceptionType"


@dataclass
class NotebooksReport:
    folder: Path
    outcomes: list[NotebookOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "notebooks": len(self.outcomes),
            "notebooks_failed": sum(o.error is not None for o in self.outcomes),
            "figures": sum(o.figures for o in self.outcomes),
        }


def output_folder(cfg: Settings) -> Path:
    return cfg.data_dir / "notebooks"


def default_parameters(cfg: Settings) -> dict[str, dict[str, Any]]:
    """What the job passes, per notebook, over the notebooks' own defaults."""
    return {TRAINING: {"MODEL_NAME": f"{cfg.models.name}-notebook"}}


def discover(folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    """The notebooks to run, in name order; ``names`` (file names or stems) picks some."""
    if not folder.is_dir():
        raise error(ErrorCode.NOTEBOOKS_MISSING, path=folder, reason="the folder is missing")
    every = sorted(folder.glob("*.ipynb"))
    if names:
        wanted = {n if n.endswith(".ipynb") else f"{n}.ipynb" for n in names}
        unknown = wanted - {p.name for p in every}
        if unknown:
            raise error(
                ErrorCode.NOTEBOOKS_MISSING,
                path=folder,
                reason=f"no notebook named {', '.join(sorted(unknown))}",
            )
        every = [p for p in every if p.name in wanted]
    if not every:
        raise error(ErrorCode.NOTEBOOKS_MISSING, path=folder, reason="no .ipynb files in it")
    return every


def run(
    spark: SparkSession,
    cfg: Settings,
    *,
    names: Sequence[str] | None = None,
    folder: Path | None = None,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
) -> NotebooksReport:
    """Execute the notebooks (all, or ``names``) and write their executed copies."""
    from lakehouse.notebooks import NOTEBOOKS, CellError, execute, write
    from lakehouse.tracking import TrackingServer, ping, tracking_uri

    del spark  # the notebooks build theirs with build_spark(cfg): the running session
    paths = discover(folder or NOTEBOOKS, names)
    given = dict(default_parameters(cfg)) if parameters is None else dict(parameters)
    report = NotebooksReport(output_folder(cfg))
    with contextlib.ExitStack() as stack:
        needs_server = any(p.name == TRAINING for p in paths)
        if needs_server and cfg.mlflow.tracking_uri is None and not ping(tracking_uri(cfg)):
            stack.enter_context(TrackingServer(cfg))
        for path in paths:
            t0 = time.perf_counter()
            try:
                nb_run = execute(path, given.get(path.name))
            except CellError as exc:
                nb_run = exc.run
            copy = write(nb_run, report.folder)
            figures = sum(nb_run.figures_by_cell.values())
            outcome = NotebookOutcome(
                path.name, time.perf_counter() - t0, figures, copy, nb_run.error
            )
            log.info(
                "notebook %s: %s in %.1f s, %d figures",
                path.name,
                nb_run.error or "ran",
                outcome.seconds,
                figures,
            )
            report.outcomes.append(outcome)
    failed = [o for o in report.outcomes if o.error is not None]
    if failed:
        first = failed[0]
        raise error(ErrorCode.NOTEBOOK_FAILED, name=first.name, detail=first.error, path=first.copy)
    return report


def stage(spark: SparkSession, cfg: Settings) -> dict[str, int]:
    """Demo stage: every notebook on the demo lakehouse, executed copies kept."""
    return run(spark, cfg).counts()


def describe(report: NotebooksReport) -> str:
    lines = [f"executed notebooks in {report.folder}:"]
    for o in report.outcomes:
        lines.append(f"  {o.name:<34} {o.seconds:6.1f} s  {o.figures} figures  {o.error or 'ok'}")
    return "\n".join(lines)
