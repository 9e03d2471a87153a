"""The 互联互通 (4A) query services and WS/T 500 shared documents over HTTP, mounted by
:func:`serving.app.create_app` under ``/interop/4a``.

``GET /{service}?institution=...`` answers one page of a service (:data:`SERVICES`, the
request and response schemas in docs/openapi/interop-4a.json); ``GET /documents`` lists an
encounter's WS/T 500 documents and ``GET /documents/{code}`` returns one as CDA XML. Sign-in
is the assistant's (``Authorization: Bearer <token>`` from ``POST /api/login``). Every read
goes through the FHIR store's guarded path (:class:`~serving.fhir.store.FhirStore`): policy,
patient scope, audit. Asking for an institution that is not the caller's is refused
(``LH-IOP-001``) and audited. Errors answer the service's ``{"error": ...}`` body with the
code's HTTP status; never a stack trace or a patient value. docs/interop-4a.md has the
services, their source tables and what is empty and why.
"""

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from lakehouse import __version__
from lakehouse.errors import ErrorCode, error
from lakehouse.governance.audit import Action, AuditEvent, record_or_refuse
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import ALL_SITES
from serving.assistant.tools import DataTools, purpose_of
from serving.fhir.api import guarded as _guarded
from serving.fhir.store import FhirStore
from serving.interop import cda
from serving.interop.services import (
    SERVICES,
    Answer,
    InteropTables,
    QueryParams,
    Service,
    local,
    page,
    rows,
    where_key,
)

logger = logging.getLogger(__name__)

PREFIX = "/interop/4a"
CDA_XML = "application/xml"
_CODE = re.compile(r"[A-Za-z0-9.\-]{1,20}")
_ENCOUNTER = (
    "patient_id", "encounter_class", "status", "dept_code", "dept_name", "attending_provider_id",
    "attending_provider_name", "start_at", "end_at", "admit_at", "discharge_at",
    "source_updated_at",
)  # fmt: skip
_DOCUMENT = (
    "document_id", "patient_id", "encounter_id", "document_type_code", "document_type_system",
    "template_ids", "title", "effective_at", "set_id", "version_number", "confidentiality_code",
    "language_code", "id_card_no", "patient_name", "author_id", "author_name", "custodian_code",
    "custodian_name", "sections", "source_updated_at",
)  # fmt: skip
_PATIENT = ("name", "sex_code", "birth_date", "id_card_no", "source_updated_at")
_DIAGNOSIS = (
    "source_code", "source_name", "standard_vocabulary", "standard_code", "standard_name",
    "diagnosis_type", "is_primary", "diagnosed_at",
)  # fmt: skip
_MEDICATION = (
    "drug_source_name", "drug_standard_name", "dose", "dose_unit", "route", "frequency",
    "ordered_at",
)  # fmt: skip
_LAB = (
    "test_source_name", "test_standard_name", "test_local_name", "value_source",
    "value_as_number", "unit_source", "abnormal_flag", "collected_at",
)  # fmt: skip
#: Rows of one kind a rendered document lists at most.
DOCUMENT_ROWS = 200


class DocumentParams(BaseModel):
    """The encounter whose shared documents are asked for."""

    model_config = ConfigDict(extra="forbid")

    institution: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="Institution code.")
    encounter_id: str = Field(
        pattern=r"^[A-Za-z0-9_.:|\-]{1,128}$", description="Visit number (门诊号 / 住院号)."
    )


class DocumentInfo(BaseModel):
    """One WS/T 500 document of the encounter."""

    code: str = Field(description="Document type code (C0001...) in 2.16.156.10011.2.4.")
    title: str | None = None
    template_ids: list[str] = Field(description="templateId/@root values.")
    origin: Literal["stored", "rendered"] = Field(
        description="stored: the source sent it (silver.clinical_document); rendered: "
        "written from silver because the source sent none."
    )
    document_id: str | None = Field(default=None, description="Id of a stored document.")
    effective_at: datetime | None = None


class DocumentList(BaseModel):
    """The shared documents of one encounter."""

    institution: str
    encounter_id: str
    documents: list[DocumentInfo]


def interop_app(tools: DataTools, zone: ZoneInfo, principal: Callable[..., Principal]) -> FastAPI:
    """The 4A sub-application over the assistant's data tools; ``principal`` is the
    service's sign-in dependency (the parent sets the state it reads)."""
    store = FhirStore(tools, zone)
    tables = InteropTables.of(tools.tables)
    user = Annotated[Principal, Depends(principal)]
    app = FastAPI(
        title="互联互通 4A query services",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def allowed(who: Principal, institution: str, target: str) -> None:
        """Refuse (and audit) an institution outside the caller's site scope."""
        policy = tools.access.guard.policy
        scoped = "institution" in policy.grant(who).scope
        if not scoped or ALL_SITES in who.institutions or institution in who.institutions:
            return
        record_or_refuse(
            tools.access.audit,
            AuditEvent(
                Action.ACCESS_DENIED, who.username, outcome="denied", role=who.role,
                session_id=who.session_id, target=target, purpose=purpose_of(who),
                reason=ErrorCode.IOP_INSTITUTION_DENIED.id,
            ),
        )  # fmt: skip
        shown = institution if len(institution) <= 16 else "(not shown)"
        raise error(ErrorCode.IOP_INSTITUTION_DENIED, name=shown)

    def answer(service: Service, who: Principal, params: QueryParams) -> dict[str, Any]:
        extra = sorted(params.model_fields_set - service.params())
        if extra:
            raise error(ErrorCode.IOP_REQUEST_INVALID, name=extra[0], reason="not taken")
        if params.start and params.end and local(params.end, zone) <= local(params.start, zone):
            raise error(ErrorCode.IOP_REQUEST_INVALID, name="end", reason="not after start")
        spec = service.table(tables) if service.table else None
        allowed(who, params.institution, spec.name if spec else service.path)
        found, total = _guarded(lambda: page(store, who, service, params, tables))
        return {
            "service": service.path,
            "title": service.title,
            "institution": params.institution,
            "total": total,
            "offset": params.offset,
            "rows": [{f: r.get(f) for f in service.fields} for r in found],
            "sources": [spec.name] if spec else [],
            "note": service.note,
        }

    for service in SERVICES:
        _route(app, service, user, answer)

    def encounter(who: Principal, p: DocumentParams) -> dict[str, Any]:
        allowed(who, p.institution, tables.clinical_document.name)
        where = where_key(institution_code=p.institution, encounter_id=p.encounter_id)
        found = rows(
            store, who, tables.encounter, list(_ENCOUNTER), where,
            newest="source_updated_at", limit=8,
        )  # fmt: skip
        if not found:
            raise error(ErrorCode.IOP_DOCUMENT_NOT_FOUND, name="(encounter)")
        return found[0]

    def held(who: Principal, e: dict[str, Any], code: str | None = None) -> list[dict[str, Any]]:
        """The encounter's stored documents (of ``code``), the newest of each type first."""
        keys = {"institution_code": e["institution_code"], "encounter_id": e["encounter_id"]}
        if code is not None:
            keys["document_type_code"] = code
        found = rows(
            store, who, tables.clinical_document, list(_DOCUMENT), where_key(**keys),
            newest="effective_at", limit=DOCUMENT_ROWS,
        )  # fmt: skip
        newest: dict[str, dict[str, Any]] = {}
        for r in found:
            newest.setdefault(str(r.get("document_type_code") or ""), r)
        return list(newest.values())

    @app.get("/documents", response_model=DocumentList, summary="共享文档 list of an encounter")
    def documents(who: user, p: Annotated[DocumentParams, Query()]) -> dict[str, Any]:
        """An encounter's WS/T 500 shared documents ([interop-4a.md](interop-4a.md)).

        Each one the source sent, and a rendered one of each of C0001/C0002/C0032/C0034/
        C0053 that applies and was not sent."""
        e = _guarded(lambda: encounter(who, p))
        stored = _guarded(lambda: held(who, e))
        out = [
            DocumentInfo(
                code=str(r.get("document_type_code") or ""),
                title=r.get("title"),
                template_ids=list(r.get("template_ids") or []),
                origin="stored",
                document_id=r.get("document_id"),
                effective_at=r.get("effective_at"),
            )
            for r in stored
        ]
        sent = {d.code for d in out}
        out += [
            DocumentInfo(
                code=code,
                title=cda.TEMPLATES[code][0],
                template_ids=[cda.TEMPLATES[code][1]],
                origin="rendered",
                effective_at=cda.effective(code, e),
            )
            for code in cda.applicable(e)
            if code not in sent
        ]
        return {"institution": p.institution, "encounter_id": p.encounter_id, "documents": out}

    @app.get(
        "/documents/{code}",
        response_class=Response,
        summary="共享文档: one WS/T 500 document as CDA XML",
        responses={200: {"content": {CDA_XML: {"schema": {"type": "string"}}}}},
    )
    def document(code: str, who: user, p: Annotated[DocumentParams, Query()]) -> Response:
        """The document of type ``code`` of the encounter, as the source sent it (written
        back from silver) or rendered from silver; header ``X-Document-Origin`` says which."""
        if not _CODE.fullmatch(code):
            raise error(ErrorCode.IOP_REQUEST_INVALID, name="code", reason="a document type code")
        e = _guarded(lambda: encounter(who, p))
        data, origin = _guarded(lambda: write(who, e, code))
        cda.check(data, code)
        return Response(data, media_type=CDA_XML, headers={"X-Document-Origin": origin})

    def write(who: Principal, e: dict[str, Any], code: str) -> tuple[bytes, str]:
        inst, pid = e["institution_code"], e.get("patient_id")
        patient = None
        if pid:
            found = rows(
                store, who, tables.patient, list(_PATIENT),
                where_key(institution_code=inst, patient_id=pid),
                newest="source_updated_at", limit=8,
            )  # fmt: skip
            same = [r for r in found if r.get("source_system") == e.get("source_system")]
            patient = next(iter(same or found), None)
        stored = held(who, e, code)
        if stored:
            return cda.stored(stored[0], e, patient), "stored"
        if code not in cda.applicable(e):
            raise error(ErrorCode.IOP_DOCUMENT_NOT_FOUND, name=code)
        visit = where_key(institution_code=inst, encounter_id=e["encounter_id"])
        src = cda.Sources(
            encounter=e,
            patient=patient,
            diagnoses=rows(store, who, tables.diagnosis, list(_DIAGNOSIS), visit,
                           newest="diagnosed_at", limit=DOCUMENT_ROWS),
            medications=rows(store, who, tables.medication_order, list(_MEDICATION), visit,
                             newest="ordered_at", limit=DOCUMENT_ROWS),
            labs=rows(store, who, tables.lab_result, list(_LAB), visit,
                      newest="collected_at", limit=DOCUMENT_ROWS),
            custodian_name=_org_name(store, who, tables, inst),
        )  # fmt: skip
        return cda.rendered(code, src), "rendered"

    return app


def _org_name(store: FhirStore, who: Principal, tables: InteropTables, inst: str) -> str | None:
    found = rows(
        store, who, tables.org, ["org_name"], where_key(org_code=inst), newest="source_updated_at",
        limit=4,
    )  # fmt: skip
    return next((r["org_name"] for r in found if r.get("org_name")), None)


def _route(
    app: FastAPI,
    service: Service,
    user: Any,
    answer: Callable[[Service, Principal, QueryParams], dict[str, Any]],
) -> None:
    """``GET /{service.path}`` answering ``Answer[service.model]``."""
    taken = ", ".join(sorted(service.params()))
    doc = f"{service.model.__doc__ or service.title} Parameters taken: {taken}."
    if service.note:
        doc += f" {service.note}"

    def endpoint(who: user, params: Annotated[QueryParams, Query()]) -> dict[str, Any]:
        return answer(service, who, params)

    app.add_api_route(
        f"/{service.path}",
        endpoint,
        methods=["GET"],
        response_model=Answer[service.model],  # type: ignore[name-defined]
        summary=service.title,
        description=doc,
        name=service.path,
        operation_id=f"interop_{service.path.replace('-', '_')}",
    )
