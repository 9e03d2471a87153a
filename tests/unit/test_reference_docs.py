"""Generated documents in docs/ must match the code (run `lakehouse docs` to refresh)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI

from lakehouse.errors import ErrorCode, error
from lakehouse.governance.sessions import Principal
from lakehouse.reference import (
    render_data_dictionary,
    render_openapi,
    render_settings,
    stale_documents,
    stale_files,
    write_files,
)
from lakehouse.tables.ops.runs import JOB_RUNS
from serving.openapi import openapi_documents, openapi_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    from pyspark import SparkContext

    before = SparkContext._active_spark_context  # the suite's session may already run
    built = openapi_schemas()
    assert SparkContext._active_spark_context is before  # generating started no Spark
    return built


@pytest.fixture(scope="module")
def matrix() -> str:
    """The committed matrix (equal to the generated one: test_generated_documents_are_current)."""
    return (DOCS / "change-impact.md").read_text(encoding="utf-8")


def test_generated_documents_are_current() -> None:
    stale = stale_documents(DOCS, openapi_documents())
    assert stale == [], "run `.venv/bin/lakehouse docs` and commit docs/"


def test_a_removed_service_spec_is_stale_and_removed(tmp_path: Path) -> None:
    docs = {"x.md": "# x\n", "openapi/a.json": "{}\n"}
    write_files(tmp_path, docs)
    (tmp_path / "openapi" / "gone.json").write_text("{}\n")
    (tmp_path / "hand-written.md").write_text("# kept\n")
    assert stale_files(tmp_path, docs) == ["openapi/gone.json"]
    write_files(tmp_path, docs)
    assert sorted(p.name for p in (tmp_path / "openapi").iterdir()) == ["a.json"]
    assert (tmp_path / "hand-written.md").exists()
    assert stale_files(tmp_path, docs) == []


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


def test_openapi_of_ask_has_its_catalogued_errors(schemas: dict[str, dict[str, Any]]) -> None:
    assistant = schemas["assistant"]
    ask = assistant["paths"]["/api/ask"]["post"]
    assert ask["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AskRequest"
    }
    errors = {status: r["description"] for status, r in ask["responses"].items()}
    assert "LH-SEC-005" in errors["401"]  # no session
    assert "LH-SRV-001" in errors["422"]  # the app's own invalid-request body, not FastAPI's
    assert "LH-SRV-004" in errors["500"]
    assert "default" in errors
    assert ask["security"] == [{"session": []}]
    assert ask["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "HTTPValidationError" not in json.dumps(assistant)
    citation = assistant["paths"]["/api/citations/{citation}"]["get"]["responses"]
    assert "LH-SRV-003" in citation["404"]["description"]
    assert "403" not in ask["responses"]  # access denied is a refused answer (200), handled
    login = assistant["paths"]["/api/login"]["post"]
    assert "security" not in login
    assert "LH-SEC-001" in login["responses"]["401"]["description"]  # via IdentityService.login
    assert "LH-SEC-002" in login["responses"]["423"]["description"]
    assert not any(p.startswith("/fhir") for p in assistant["paths"])


def _signed_in() -> Principal:
    raise error(ErrorCode.SESSION_INVALID, reason="missing")


_ROUTER = APIRouter(prefix="/api/x")


@_ROUTER.get("/y")
def _y(who: Annotated[Principal, Depends(_signed_in)]) -> dict[str, str]:
    raise error(ErrorCode.SRV_CITATION_NOT_FOUND, table="t", version=1)


def test_openapi_errors_cover_routes_of_included_routers() -> None:
    app = FastAPI()
    app.include_router(_ROUTER)
    op = openapi_schemas(app)["assistant"]["paths"]["/api/x/y"]["get"]
    assert op["security"] == [{"session": []}]
    assert "LH-SEC-005" in op["responses"]["401"]["description"]
    assert "LH-SRV-003" in op["responses"]["404"]["description"]


def test_openapi_of_fhir_is_its_own_document(schemas: dict[str, dict[str, Any]]) -> None:
    fhir = schemas["fhir-r4"]
    assert fhir["servers"] == [{"url": "/fhir/r4"}]
    assert {"/metadata", "/{rtype}", "/{rtype}/{fhir_id}"} <= set(fhir["paths"])
    search = fhir["paths"]["/{rtype}"]["get"]["responses"]
    assert "LH-FHR-002" in search["400"]["description"]
    assert "application/fhir+json" in search["401"]["content"]


def test_openapi_render_is_stable(schemas: dict[str, dict[str, Any]]) -> None:
    text = render_openapi(schemas["assistant"])
    assert text == render_openapi(json.loads(text))
    assert text.endswith("}\n")
    assert '"openapi": "3.1' in text


def _section(text: str, component: str) -> dict[str, str]:
    body = text.split(f"## `{component}`\n", 1)[1].split("\n## ", 1)[0]
    return dict(line[4:].split("**: ", 1) for line in body.splitlines() if line.startswith("- **"))


def test_change_impact_lists_known_edges(matrix: str) -> None:
    silver_job = _section(matrix, "jobs.silver")
    assert "`silver.patient`" in silver_job["writes"]  # via lakehouse.silver's transforms
    assert "`ops.silver_progress`" in silver_job["writes"].split(";")[0]  # its own upsert
    assert "`bronze.his_patients`" in silver_job["reads or names"]
    assert "`lakehouse silver`" in silver_job["commands"]
    assert "`jobs.demo`" in silver_job["jobs"]
    assert "[silver.md](silver.md)" in silver_job["docs"]
    library = _section(matrix, "lakehouse.silver")
    assert "`jobs.silver`" in library["jobs"]
    assert "`silver.patient`" in library["writes"]
    ingest = _section(matrix, "jobs.ingest")
    assert "`bronze.quarantine`" in ingest["writes"]
    assert "`ops.job_runs`" in ingest["writes"]
    assert "tests/" in ingest["tests"]
    assert "## `lakehouse.tables`" not in matrix  # the specs themselves are no component
