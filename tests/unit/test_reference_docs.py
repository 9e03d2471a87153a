"""Generated documents in docs/ must match the code (run `lakehouse docs` to refresh)."""

from __future__ import annotations

from pathlib import Path

from lakehouse.reference import render_data_dictionary, render_settings, stale_documents
from lakehouse.tables.ops.runs import JOB_RUNS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_generated_documents_are_current() -> None:
    assert stale_documents(DOCS) == [], "run `.venv/bin/lakehouse docs` and commit docs/"


def test_dictionary_lists_columns_with_tags() -> None:
    text = render_data_dictionary([JOB_RUNS])
    assert "## `ops.job_runs`" in text
    assert "| `run_id` | `string` | no |" in text
    assert "clustered by: job, started_at" in text


def test_settings_reference_names_nested_variables() -> None:
    text = render_settings()
    assert "`LAKEHOUSE_SPARK__MASTER`" in text
    assert "`LAKEHOUSE_METASTORE__KIND`" in text
    assert "(or JAVA_HOME)" in text
