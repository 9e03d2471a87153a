"""Execute a notebook's code cells in this process with IPython, the engine a Jupyter
kernel runs (docs/adr/0028-notebooks-run-in-process-on-the-test-session.md).

The cells share the test run's one Spark session (``build_spark`` returns the running one)
instead of starting a kernel and a JVM per notebook. As papermill does, the values a test
passes replace those of the cell tagged ``parameters``: they are set right after it runs.
Figures use matplotlib's Agg backend; each cell's figures are saved as PNG and closed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nbformat
from IPython.core.interactiveshell import InteractiveShell

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"


class NotebookError(AssertionError):
    """A cell raised: the notebook, the cell's number and its first line."""


@dataclass
class NotebookRun:
    """What a run left: the namespace of the notebook and the figures it drew."""

    name: str
    namespace: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    figures_by_cell: dict[int, int] = field(default_factory=dict)


def _shell() -> InteractiveShell:
    shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    return shell


def run_notebook(name: str, out: Path, parameters: Mapping[str, Any] | None = None) -> NotebookRun:
    """Run every code cell of ``notebooks/<name>`` top to bottom; raise at the first error."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    shell = _shell()
    run = NotebookRun(name, shell.user_ns)
    out.mkdir(parents=True, exist_ok=True)
    plt.close("all")
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        with warnings.catch_warnings():
            # plt.show() under Agg: nothing to show, the figures are saved below.
            warnings.filterwarnings("ignore", message=".*non-interactive.*")
            result = shell.run_cell(cell.source, store_history=False, silent=False)
        if not result.success:
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            err = result.error_before_exec or result.error_in_exec
            raise NotebookError(f"{name} cell {number} ({first!r}): {err!r}") from err
        if "parameters" in cell.metadata.get("tags", []) and parameters:
            shell.user_ns.update(parameters)
        nums = plt.get_fignums()
        for num in nums:
            path = out / f"{Path(name).stem}-cell{number:02d}-fig{num}.png"
            plt.figure(num).savefig(path, dpi=60)
            run.figures.append(path)
        if nums:
            run.figures_by_cell[number] = len(nums)
        plt.close("all")
    return run
