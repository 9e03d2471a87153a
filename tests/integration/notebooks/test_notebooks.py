"""Every notebook in notebooks/ runs top to bottom and draws its plots, in this process on
the test run's Spark session (lakehouse.notebooks, ADR 0028), against the small worlds of
conftest.py; committed notebooks carry no outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from lakehouse.notebooks import NOTEBOOKS, NotebookRun, execute
from tests.integration.notebooks.conftest import AssistantWorld, GoldWorld

EXPLORE = "01-explore-catalog.ipynb"
COHORT = "02-cohort-t2dm-hba1c.ipynb"
TRAIN = "03-train-tabular-mlflow.ipynb"
NLP = "04-clinical-nlp.ipynb"
ASSISTANT = "05-ask-the-assistant.ipynb"
TESTED = (EXPLORE, COHORT, TRAIN, NLP, ASSISTANT)


def run_notebook(name: str, figures: Path, parameters: dict[str, Any] | None = None) -> NotebookRun:
    return execute(NOTEBOOKS / name, parameters, figures_dir=figures)


def _views(world: GoldWorld) -> dict[str, str]:
    return dict(world.views)


def test_every_notebook_is_tested_and_committed_without_outputs() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == sorted(TESTED)
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
        assert not dirty, f"{name}: outputs in code cells {dirty}; strip them before committing"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: one cell tagged 'parameters'"


def test_explore_catalog(
    spark: Any, gold_world: GoldWorld, notebook_env: None, figures: Path
) -> None:
    run = run_notebook(EXPLORE, figures, {"VIEWS": _views(gold_world)})
    ns = run.namespace
    assert len(run.figures) == 3, run.figures_by_cell
    assert ns["counts"]["person"] == 120
    assert "gold.person" in set(ns["dictionary"].table)
    # The view of gold.person replaces its identifiers and keeps the year of birth only.
    shown = dict(zip(ns["shown"]["column"], ns["shown"]["transform"], strict=True))
    assert shown["person_source_value"] == "token"
    assert shown["birth_datetime"] == "year"
    assert "day_of_birth" in set(ns["dropped"]["column"])
    top = ns["top_conditions"]
    assert top.iloc[0].concept_code == "E11.900"
    assert top.iloc[0].persons == len(gold_world.t2dm)


def test_cohort_counts_what_the_rows_say(
    spark: Any, gold_world: GoldWorld, notebook_env: None, figures: Path
) -> None:
    run = run_notebook(COHORT, figures, {"VIEWS": _views(gold_world)})
    ns = run.namespace
    assert ns["t2dm_count"] == len(gold_world.t2dm) > 0
    assert ns["cohort_count"] == len(gold_world.cohort) > 0
    assert int(ns["summary"].persons[0]) == len(gold_world.cohort)
    assert len(run.figures) == 3, run.figures_by_cell


def test_clinical_nlp(figures: Path) -> None:
    run = run_notebook(NLP, figures)
    ns = run.namespace
    ents = ns["entities"]
    assertions = set(zip(ents.text, ents.assertion, strict=True))
    assert ("高血压", "negated") in assertions
    assert ("2型糖尿病", "family") in assertions
    assert all("<mark" in html for html in ns["rendered"])
    assert set(ns["replacements"].type) >= {"NAME", "ID_CARD", "PHONE", "ADDRESS", "DATE"}
    assert ns["remaining"] == [[], [], []]
    for (_, original), result in zip(ns["NOTES"], ns["results"], strict=True):
        assert "13912345678" not in result.text
        assert "110101198003071238" not in result.text
        assert original != result.text
    assert len(run.figures) == 2, run.figures_by_cell


def test_assistant_answers_with_citations_and_refuses_an_outsider(
    spark: Any, assistant_world: AssistantWorld, notebook_env: None, figures: Path
) -> None:
    w = assistant_world
    params = {
        "TABLES": w.tables,
        "ACCESS": w.access,
        "DIRECTORY": w.directory,
        "CONCEPT_TABLE": w.concept_table,
        "SYNONYM_TABLE": w.synonym_table,
    }
    run = run_notebook(ASSISTANT, figures, params)
    ns = run.namespace
    assert ns["mrn"] == "P1"
    answer = ns["answer"]
    assert not answer.refused
    assert "8.6" in answer.text
    assert answer.citations
    assert all(c.startswith(w.tables.lab_result.name) for c in answer.citations)
    assert list(ns["cited"].value_std) == [8.6]
    refused = ns["refused"]
    assert refused.refused
    assert refused.code == "LH-SEC-006"
    denied = [r for r in w.audit.rows if r["action"] == "access_denied"]
    assert denied
    assert all(r["actor"] == "nb_outsider" for r in denied)
    assert all(r["patient_ref"] and "P1" not in r["patient_ref"] for r in denied)
    assert len(run.figures) == 2, run.figures_by_cell


def test_training_registers_and_reads_back_the_champion(
    spark: Any,
    gold_world: GoldWorld,
    mlflow_server: Any,
    notebook_env: None,
    figures: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
) -> None:
    monkeypatch.setenv("LAKEHOUSE_MLFLOW__PORT", str(mlflow_server.settings.mlflow.port))
    params = {
        "FEATURES": gold_world.features,
        "CONDITIONS": gold_world.condition,
        "CONCEPT": gold_world.concept,
        "MODEL_NAME": f"nb-t2dm-{unique}",
        "CANDIDATES": ("logreg",),
    }
    run = run_notebook(TRAIN, figures, params)
    ns = run.namespace
    report = ns["report"]
    assert report.model_name == f"nb-t2dm-{unique}"
    assert report.champion_version == 1
    inputs = {gold_world.features, gold_world.condition, gold_world.concept}
    assert set(report.data_versions) == inputs
    assert len(ns["risk"]) == len(ns["sample"]) > 0
    assert 0.0 <= float(ns["risk"].min()) <= float(ns["risk"].max()) <= 1.0
    assert len(run.figures) == 4, run.figures_by_cell


def _write(folder: Path, name: str, *sources: str) -> None:
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / name)


def test_the_job_runs_them_all_keeps_executed_copies_and_names_the_failure(
    spark: Any, settings: Any, notebook_env: None, tmp_path: Path, unique: str
) -> None:
    from jobs import notebooks as notebooks_job
    from lakehouse.errors import ErrorCode, LakehouseError

    folder = tmp_path / "nbs"
    folder.mkdir()
    good, bad = f"a-{unique}.ipynb", f"b-{unique}.ipynb"
    _write(  # the session the job runs on is the one the notebook's build_spark returns
        folder,
        good,
        "N = 1",
        "from lakehouse.settings import load_settings\nfrom lakehouse.spark import build_spark\n"
        "spark = build_spark(load_settings())\nspark.range(N).count()",
    )
    _write(folder, bad, "X = 0", "raise KeyError('no such column')")
    with pytest.raises(LakehouseError) as caught:
        notebooks_job.run(spark, settings, folder=folder, parameters={good: {"N": 7}})
    assert caught.value.code is ErrorCode.NOTEBOOK_FAILED
    assert caught.value.params["name"] == bad
    assert caught.value.params["detail"] == "cell 2: KeyError"
    out = notebooks_job.output_folder(settings)
    ran = nbformat.read(out / good, as_version=4)
    assert ran.cells[1].outputs[0].data["text/plain"] == "7"
    failed = nbformat.read(out / bad, as_version=4)
    assert failed.cells[1].outputs[-1].ename == "KeyError"
    report = notebooks_job.run(spark, settings, folder=folder, names=[good.removesuffix(".ipynb")])
    assert report.counts() == {"notebooks": 1, "notebooks_failed": 0, "figures": 0}
    with pytest.raises(LakehouseError) as missing:
        notebooks_job.run(spark, settings, folder=folder, names=["nope"])
    assert missing.value.code is ErrorCode.NOTEBOOKS_MISSING
