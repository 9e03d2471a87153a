"""Execute a Jupyter notebook's code cells in this process with IPython, the engine a
Jupyter kernel runs, and keep an executed copy with its outputs, as papermill does
(docs/adr/0028-notebooks-run-in-process-on-the-test-session.md).

The cells share the caller's Spark session (``build_spark`` returns the running one)
instead of starting a kernel and a second JVM, which could not open an embedded Derby
catalog the caller holds. As with papermill, the values passed replace those of the cell
tagged ``parameters``: they are set right after it runs. Figures use matplotlib's Agg
backend; each cell's figures become PNG outputs of that cell and are closed.

The executed copy holds what the cells printed and displayed (tables, figures, errors):
it is data, kept under the lakehouse's data folder, never committed.
"""

from __future__ import annotations

import base64
import io
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nbformat
from IPython.core.displayhook import DisplayHook
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

#: The project's notebooks (beside the packages in a source checkout).
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# nbformat and IPython carry no type hints: their calls go through these names.
_v4: Any = nbformat.v4
_read: Any = nbformat.read
_write: Any = nbformat.write


class _ResultHook(DisplayHook):
    """Keeps the formatted value of a cell's last expression instead of printing
    ``Out[n]``: it becomes the cell's ``execute_result`` output."""

    shown: tuple[dict[str, Any], dict[str, Any]] | None = None

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict: Any, md_dict: Any = None) -> None:
        self.shown = (format_dict, md_dict or {})


class _Shell(InteractiveShell):
    displayhook_class = _ResultHook


@dataclass
class NotebookRun:
    """What a run left: the notebook's namespace, its figures and the executed copy."""

    name: str
    namespace: dict[str, Any]
    executed: nbformat.NotebookNode
    figures: list[Path] = field(default_factory=list)
    figures_by_cell: dict[int, int] = field(default_factory=dict)
    error: str | None = None  # "cell N: ExceptionType" of the first cell that raised
    error_cell: int | None = None


class CellError(Exception):
    """A cell raised: the notebook, the cell's number and the exception's type."""

    def __init__(self, run: NotebookRun, cause: BaseException) -> None:
        self.run = run
        super().__init__(f"{run.name} {run.error}: {cause!r}")


def _shell() -> Any:
    config = Config()
    config.HistoryManager.enabled = False  # no history database under the user's home
    shell: Any = _Shell.instance(config=config)
    shell.reset(new_session=True)
    return shell


def _figure_output(num: int) -> nbformat.NotebookNode:
    buf = io.BytesIO()
    fig = plt.figure(num)
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    output: nbformat.NotebookNode = _v4.new_output(
        "display_data",
        data={
            "image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
            "text/plain": f"<Figure {num}>",
        },
    )
    return output


def _outputs(cap: Any, value: Any, number: int) -> list[nbformat.NotebookNode]:
    out: list[nbformat.NotebookNode] = []
    for name, text in (("stdout", cap.stdout), ("stderr", cap.stderr)):
        if text:
            out.append(_v4.new_output("stream", name=name, text=text))
    for shown in cap.outputs:
        out.append(_v4.new_output("display_data", data=shown.data, metadata=shown.metadata))
    if value is not None:
        data, metadata = value
        out.append(
            _v4.new_output("execute_result", data=data, metadata=metadata, execution_count=number)
        )
    return out


def execute(
    path: Path,
    parameters: Mapping[str, Any] | None = None,
    figures_dir: Path | None = None,
) -> NotebookRun:
    """Run every code cell of the notebook at ``path`` top to bottom, recording outputs.

    Stops at the first cell that raises and raises :class:`CellError` (its ``run`` holds
    the executed copy so far, the error as the failing cell's output). ``figures_dir``:
    also save each figure there as PNG (tests look at them)."""
    nb = _read(path, as_version=4)
    shell = _shell()
    run = NotebookRun(path.name, shell.user_ns, nb)
    if figures_dir is not None:
        figures_dir.mkdir(parents=True, exist_ok=True)
    plt.close("all")
    count = 0
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        count += 1
        shell.displayhook.shown = None
        with warnings.catch_warnings(), capture_output() as cap:
            # plt.show() under Agg: nothing to show, the figures are kept below.
            warnings.filterwarnings("ignore", message=".*non-interactive.*")
            # store_history: IPython reads a trailing ';' (show no value) from the history.
            result = shell.run_cell(cell.source, store_history=True, silent=False)
        cell.execution_count = count
        cell.outputs = _outputs(cap, shell.displayhook.shown, count)
        err = result.error_before_exec or result.error_in_exec
        if err is not None:
            cell.outputs.append(
                _v4.new_output(
                    "error",
                    ename=type(err).__name__,
                    evalue=str(err),
                    traceback=traceback.format_exception(err),
                )
            )
            run.error, run.error_cell = f"cell {number}: {type(err).__name__}", number
            plt.close("all")
            raise CellError(run, err) from err
        if "parameters" in cell.metadata.get("tags", []) and parameters:
            shell.user_ns.update(parameters)
        nums = plt.get_fignums()
        for num in nums:
            cell.outputs.append(_figure_output(num))
            if figures_dir is not None:
                saved = figures_dir / f"{path.stem}-cell{number:02d}-fig{num}.png"
                plt.figure(num).savefig(saved, dpi=60)
                run.figures.append(saved)
        if nums:
            run.figures_by_cell[number] = len(nums)
        plt.close("all")
    return run


def write(run: NotebookRun, folder: Path) -> Path:
    """Write the executed copy as ``<folder>/<name>`` (an ``.ipynb`` any front end opens)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / run.name
    tmp = target.with_suffix(".ipynb.tmp")
    _write(run.executed, tmp)
    tmp.replace(target)
    return target
