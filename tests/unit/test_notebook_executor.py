"""lakehouse.notebooks: cells run in this process, parameters override the tagged cell, and
the executed copy carries every kind of output a front end shows (no Spark here)."""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
import pytest

from lakehouse.notebooks import CellError, execute, write


def _notebook(path: Path, *sources: str, parameters: int = 0) -> Path:
    cells = [nbformat.v4.new_markdown_cell("# a notebook")]
    for i, src in enumerate(sources):
        cell = nbformat.v4.new_code_cell(src)
        if i == parameters:
            cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_outputs_of_every_kind_and_parameters_win(tmp_path: Path) -> None:
    nb = _notebook(
        tmp_path / "n.ipynb",
        "N = 3\nLABEL = 'default'",
        "import pandas as pd\nprint('rows', N)\npd.DataFrame({'x': range(N)})",
        "from IPython.display import HTML, display\ndisplay(HTML('<mark>hi</mark>'))\nLABEL",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nN * 2;",
    )
    run = execute(nb, {"N": 5, "LABEL": "given"}, figures_dir=tmp_path / "figs")
    assert run.error is None
    assert run.namespace["N"] == 5
    code = [c for c in run.executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3, 4]
    assert code[0].outputs == []
    stream, table = code[1].outputs
    assert stream.output_type == "stream"
    assert stream.text == "rows 5\n"
    assert table.output_type == "execute_result"
    assert "text/html" in table.data
    assert table.data["text/html"].count("<td>") == 5  # five rows of one column
    html, value = code[2].outputs
    assert html.output_type == "display_data"
    assert html.data["text/html"] == "<mark>hi</mark>"
    assert value.data["text/plain"] == "'given'"
    (figure,) = code[3].outputs  # the trailing ';' shows no value
    png = base64.b64decode(figure.data["image/png"])
    assert png.startswith(b"\x89PNG")
    assert run.figures_by_cell == {5: 1}
    assert len(run.figures) == 1
    saved = write(run, tmp_path / "out")
    again = nbformat.read(saved, as_version=4)
    nbformat.validate(again)
    assert again.cells[2].outputs[0].text == "rows 5\n"


def test_a_raising_cell_stops_the_run_and_its_error_is_kept(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "bad.ipynb", "X = 1", "print('before')\n1 / 0", "never = True")
    with pytest.raises(CellError, match=r"bad.ipynb cell 3: ZeroDivisionError") as caught:
        execute(nb)
    run = caught.value.run
    assert run.error_cell == 3
    assert "never" not in run.namespace
    code = [c for c in run.executed.cells if c.cell_type == "code"]
    assert [o.output_type for o in code[1].outputs] == ["stream", "error"]
    assert code[1].outputs[1].ename == "ZeroDivisionError"
    assert code[2].outputs == []
    assert code[2].execution_count is None
    nbformat.validate(run.executed)
