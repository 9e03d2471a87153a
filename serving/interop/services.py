"""The 互联互通 (interoperability evaluation 4A) query services: one declaration per service.

A :class:`Service` names the silver table it answers from (through :class:`InteropTables`,
so tests can rename them), the pydantic model of one answered row (its field names are the
silver columns, or the aliases of a grouped service's aggregates), the column the date
range filters, the fixed condition selecting the service's rows (outpatient visits,
surgeries...) and, for a request built from several result rows (a lab request), the
grouping. Every read goes through :meth:`serving.fhir.store.FhirStore.fetch`, the FHIR
API's guarded query path: the policy's row and column rules, patient scope and audit.

Two services have no source in silver (pathology and transfusion requests: neither the
synthetic hospital nor any landed source sends them): they answer an empty, schema-valid
page and say so in ``note`` (docs/interop-4a.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp

from lakehouse.tables.silver.documents import CLINICAL_DOCUMENT
from lakehouse.tables.silver.encounter import ENCOUNTER_TRANSFER
from lakehouse.tables.silver.organization import DEPT
from lakehouse.tables.spec import TableSpec
from serving.fhir.resources import FhirTables
from serving.fhir.store import FhirStore, live_rows, source, total_column
from serving.sql import col, string

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
_ID = r"^[A-Za-z0-9_.:|\-]{1,128}$"


@dataclass(frozen=True)
class InteropTables(FhirTables):
    """The FHIR API's silver tables and the further ones the 4A services read."""

    dept: TableSpec = DEPT
    encounter_transfer: TableSpec = ENCOUNTER_TRANSFER
    clinical_document: TableSpec = CLINICAL_DOCUMENT

    def interop(self) -> tuple[TableSpec, ...]:
        """Every table the FHIR API and the 4A services read."""
        return (*self.fhir(), self.dept, self.encounter_transfer, self.clinical_document)


# -- request and response schemas -----------------------------------------------------------
class QueryParams(BaseModel):
    """The query string of every 4A service (a parameter a service does not take is
    refused, ``LH-IOP-002``: a filter silently dropped would widen the answer)."""

    model_config = ConfigDict(extra="forbid")

    institution: str = Field(
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="Institution (机构) code whose records are asked for; it must be one "
        "of the caller's institutions (LH-IOP-001).",
    )
    patient_id: str | None = Field(
        default=None, pattern=_ID, description="Patient id (患者编号) at the institution."
    )
    encounter_id: str | None = Field(
        default=None, pattern=_ID, description="Visit number (门诊号 / 住院号)."
    )
    id: str | None = Field(
        default=None, pattern=_ID, description="The record's own id (the service's key)."
    )
    dept_code: str | None = Field(
        default=None, pattern=_ID, description="Department code (departments, staff)."
    )
    start: datetime | None = Field(
        default=None, description="Earliest time (inclusive, local time) of the service's date."
    )
    end: datetime | None = Field(
        default=None, description="Latest time (exclusive, local time) of the service's date."
    )
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size.")
    offset: int = Field(default=0, ge=0, le=100_000, description="Rows to skip.")


class Row(BaseModel):
    """Fields every answered row carries; a field the caller's role may not see is null."""

    institution_code: str = Field(description="Institution (机构) code.")
    source_system: str | None = Field(default=None, description="Source system of the record.")


class PatientInfo(Row):
    """患者基本信息: a patient as a source recorded them (silver.patient)."""

    patient_id: str
    name: str | None = Field(default=None, description="姓名 (DE02.01.039.00).")
    sex_code: str | None = Field(default=None, description="性别, GB/T 2261.1 (DE02.01.040.00).")
    birth_date: date | None = Field(default=None, description="出生日期 (DE02.01.005.01).")
    id_card_no: str | None = Field(default=None, description="身份证件号码 (DE02.01.030.00).")
    phone: str | None = Field(default=None, description="电话号码 (DE02.01.010.00).")
    address: str | None = None
    address_province: str | None = None
    address_city: str | None = None
    address_county: str | None = None
    postcode: str | None = None
    ethnicity: str | None = Field(default=None, description="民族 (DE02.01.025.00).")
    insurance_type: str | None = Field(default=None, description="医疗保险类别.")
    insurance_no: str | None = None


class Organization(Row):
    """机构: an organization a source names (silver.org)."""

    org_code: str
    org_name: str | None = None
    org_oid: str | None = None
    org_kind: str | None = None


class Department(Row):
    """科室: a department of the institution (silver.dept)."""

    dept_code: str
    dept_name: str | None = Field(default=None, description="科室名称 (DE08.10.026.00).")
    dept_name_en: str | None = None
    ward_name: str | None = Field(default=None, description="病区.")


class Staff(Row):
    """医护人员: a clinician of the institution (silver.provider)."""

    provider_id: str = Field(description="工号.")
    provider_name: str | None = None
    dept_code: str | None = None
    title: str | None = Field(default=None, description="职称.")


class _Visit(Row):
    patient_id: str
    encounter_id: str = Field(description="门诊号 / 住院号.")
    encounter_class: str | None = Field(default=None, description="outpatient, emergency...")
    status: str | None = None
    dept_code: str | None = None
    dept_name: str | None = None
    attending_provider_id: str | None = None
    attending_provider_name: str | None = None


class Registration(_Visit):
    """门诊挂号: an outpatient or emergency visit (silver.encounter)."""

    start_at: datetime | None = Field(default=None, description="Visit (就诊) time.")


class InpatientEncounter(_Visit):
    """住院就诊: an inpatient stay (silver.encounter)."""

    admit_at: datetime | None = Field(default=None, description="入院日期时间 (DE06.00.092.00).")
    start_at: datetime | None = None
    end_at: datetime | None = None
    discharge_at: datetime | None = Field(default=None, description="出院日期时间.")
    bed_no: str | None = None


class Discharge(InpatientEncounter):
    """出院: an inpatient stay that has ended (silver.encounter, discharge or end time set)."""


class Transfer(Row):
    """转科: a transfer of an inpatient between departments or beds."""

    transfer_id: str
    patient_id: str
    encounter_id: str | None = None
    transfer_at: datetime | None = None
    from_dept_code: str | None = None
    to_dept_code: str | None = None
    bed_no: str | None = None


class Order(Row):
    """医嘱: a medication order (silver.medication_order)."""

    medication_order_id: str
    patient_id: str
    encounter_id: str | None = None
    drug_source_code: str | None = None
    drug_source_name: str | None = None
    drug_standard_vocabulary: str | None = None
    drug_standard_code: str | None = None
    drug_standard_name: str | None = None
    dose: float | None = None
    dose_unit: str | None = None
    route: str | None = None
    frequency: str | None = None
    days_supply: int | None = None
    status: str | None = None
    prescriber_id: str | None = None
    ordered_at: datetime | None = None


class LabRequest(Row):
    """检验申请: a lab order and its results (silver.lab_result grouped by order)."""

    order_id: str
    patient_id: str
    encounter_id: str | None = None
    panel_code: str | None = Field(default=None, description="Order item code (OBR-4).")
    panel_name: str | None = None
    collected_at: datetime | None = Field(default=None, description="First specimen time.")
    reported_at: datetime | None = Field(default=None, description="Last report time.")
    result_count: int = Field(description="Results of the order in silver.")


class ExamRequest(Row):
    """检查申请: an imaging exam by its accession number (silver.imaging_study)."""

    study_instance_uid: str
    accession_number: str | None = Field(default=None, description="检查申请单号.")
    patient_id: str
    encounter_id: str | None = None
    modalities: list[str] | None = None
    study_description: str | None = None
    body_part: str | None = None
    study_at: datetime | None = None


class SurgeryRequest(Row):
    """手术申请: an operation (silver.procedure coded in ICD-9-CM-3 chapters 00-86)."""

    procedure_id: str
    patient_id: str
    encounter_id: str | None = None
    source_code: str | None = None
    source_name: str | None = None
    standard_vocabulary: str | None = None
    standard_code: str | None = None
    standard_name: str | None = None
    status: str | None = None
    provider_id: str | None = None
    performed_at: datetime | None = None


class PathologyRequest(Row):
    """病理申请 (no source in silver: always empty)."""

    request_id: str
    patient_id: str
    encounter_id: str | None = None
    specimen: str | None = None
    requested_at: datetime | None = None


class TransfusionRequest(Row):
    """输血申请 (no source in silver: always empty)."""

    request_id: str
    patient_id: str
    encounter_id: str | None = None
    blood_component: str | None = None
    requested_at: datetime | None = None


T = TypeVar("T", bound=Row)


class Answer(BaseModel, Generic[T]):
    """One page of a 4A service's answer."""

    service: str = Field(description="The service's path name.")
    title: str = Field(description="The service's name in the 4A evaluation.")
    institution: str
    total: int = Field(description="Rows matching the request (all pages).")
    offset: int
    rows: list[T]
    sources: list[str] = Field(description="The silver tables the answer is read from.")
    note: str | None = Field(default=None, description="Why the answer is always empty.")


# -- the services --------------------------------------------------------------------------
@dataclass(frozen=True)
class Service:
    """One 4A query service."""

    path: str
    title: str
    model: type[Row]
    table: Callable[[InteropTables], TableSpec] | None
    key: str
    date: str | None = None
    patient_linked: bool = True
    #: Fixed condition of the service's rows (Spark SQL over the table's columns).
    condition: str | None = None
    #: Grouping columns and ``(alias, Spark SQL aggregate)`` pairs of a grouped service.
    group: tuple[tuple[str, ...], tuple[tuple[str, str], ...]] | None = None
    note: str | None = None

    @property
    def fields(self) -> list[str]:
        return list(self.model.model_fields)

    def params(self) -> set[str]:
        """The query parameters this service takes."""
        out = {"institution", "limit", "offset", "id"}
        if self.patient_linked:
            out |= {"patient_id", "encounter_id"}
        if self.date:
            out |= {"start", "end"}
        if "dept_code" in self.fields:
            out.add("dept_code")
        return out


_INPATIENT = "encounter_class = 'inpatient'"
SERVICES: tuple[Service, ...] = (
    Service("patients", "患者基本信息", PatientInfo, lambda t: t.patient, "patient_id"),
    Service(
        "organizations", "机构信息", Organization, lambda t: t.org, "org_code",
        patient_linked=False,
    ),
    Service(
        "departments", "科室信息", Department, lambda t: t.dept, "dept_code",
        patient_linked=False,
    ),
    Service("staff", "医护人员", Staff, lambda t: t.provider, "provider_id", patient_linked=False),
    Service(
        "registrations", "门诊挂号", Registration, lambda t: t.encounter, "encounter_id",
        date="start_at", condition="encounter_class IN ('outpatient', 'emergency')",
    ),
    Service(
        "inpatient-encounters", "住院就诊", InpatientEncounter, lambda t: t.encounter,
        "encounter_id", date="start_at", condition=_INPATIENT,
    ),
    Service(
        "transfers", "转科", Transfer, lambda t: t.encounter_transfer, "transfer_id",
        date="transfer_at",
    ),
    Service(
        "discharges", "出院", Discharge, lambda t: t.encounter, "encounter_id",
        date="discharge_at",
        condition=f"{_INPATIENT} AND COALESCE(discharge_at, end_at) IS NOT NULL",
    ),
    Service(
        "orders", "医嘱", Order, lambda t: t.medication_order, "medication_order_id",
        date="ordered_at",
    ),
    Service(
        "lab-requests", "检验申请", LabRequest, lambda t: t.lab_result, "order_id",
        date="collected_at", condition="order_id IS NOT NULL",
        group=(
            ("institution_code", "source_system", "order_id", "patient_id", "encounter_id",
             "panel_code", "panel_name"),
            (("collected_at", "MIN(collected_at)"), ("reported_at", "MAX(reported_at)"),
             ("result_count", "COUNT(*)")),
        ),
    ),
    Service(
        "exam-requests", "检查申请", ExamRequest, lambda t: t.imaging_study, "accession_number",
        date="study_at",
    ),
    Service(
        "pathology-requests", "病理申请", PathologyRequest, None, "request_id",
        date="requested_at",
        note="No source sends pathology requests: silver holds none (docs/interop-4a.md).",
    ),
    Service(
        "transfusion-requests", "输血申请", TransfusionRequest, None, "request_id",
        date="requested_at",
        note="No source sends transfusion requests: silver holds none (docs/interop-4a.md).",
    ),
    Service(
        "surgery-requests", "手术申请", SurgeryRequest, lambda t: t.procedure, "procedure_id",
        date="performed_at",
        # ICD-9-CM-3 chapters 00-86 are operations; 87-99 diagnostic and other procedures.
        condition="standard_vocabulary = 'ICD9CM3' AND standard_code < '87'",
    ),
)  # fmt: skip


def page(
    store: FhirStore, who: Any, service: Service, params: QueryParams, tables: InteropTables
) -> tuple[list[dict[str, Any]], int]:
    """The rows of one page of ``service`` for ``params`` and the count of all matches,
    read as ``who`` through the FHIR store's guarded path."""
    if service.table is None:
        return [], 0
    spec = service.table(tables)
    conditions: list[exp.Expr] = [where_key(institution_code=params.institution)]
    for name, column in (
        ("patient_id", "patient_id"), ("encounter_id", "encounter_id"), ("id", service.key),
        ("dept_code", "dept_code"),
    ):  # fmt: skip
        value = getattr(params, name)
        if value is not None:
            conditions.append(col(column).eq(string(value)))
    if service.date and params.start is not None:
        conditions.append(col(service.date) >= _ts(params.start, store.zone))
    if service.date and params.end is not None:
        conditions.append(col(service.date) < _ts(params.end, store.zone))
    if service.condition:
        conditions.append(sqlglot.parse_one(service.condition, read="spark"))
    where = exp.and_(*conditions, live_rows())
    if service.group is None:
        names = store.visible(who, spec, [*spec.keys, *service.fields])
        cols: list[exp.Expr] = [col(c) for c in names]
        order_cols = list(spec.keys)
    else:
        by, aggregates = service.group
        shown = set(store.visible(who, spec, spec.column_names))
        cols = [col(c) for c in by]
        cols += [
            exp.alias_(sqlglot.parse_one(sql, read="spark"), alias)
            for alias, sql in aggregates
            if alias not in spec.column_names or alias in shown
        ]
        order_cols = list(by)
    query = exp.select(*cols, total_column()).from_(source(spec)).where(where)
    if service.group is not None:
        query = query.group_by(*[col(c) for c in service.group[0]])
    order: list[exp.Ordered] = []
    if service.date:
        date_sql = service.date if service.group is None else f"MIN({service.date})"
        order.append(
            exp.Ordered(
                this=sqlglot.parse_one(date_sql, read="spark"), desc=True, nulls_first=False
            )
        )
    order += [exp.Ordered(this=col(c), nulls_first=True) for c in order_cols]
    rows, total = store.fetch(
        who, query.order_by(*order), limit=params.limit, offset=params.offset, total=True
    )
    return rows, total or 0


def local(value: datetime, zone: ZoneInfo) -> datetime:
    """``value`` in local time without zone (silver's timestamps are the lakehouse's zone);
    a value without zone is local time already."""
    return value if value.tzinfo is None else value.astimezone(zone).replace(tzinfo=None)


def _ts(value: datetime, zone: ZoneInfo) -> exp.Expr:
    return exp.cast(string(local(value, zone).isoformat(sep=" ")), "timestamp")


def rows(
    store: FhirStore,
    who: Any,
    spec: TableSpec,
    wanted: list[str],
    where: exp.Expr,
    *,
    newest: str | None = None,
    limit: int,
) -> list[dict[str, Any]]:
    """The live rows of ``spec`` matching ``where``, the ``wanted`` columns the role may see,
    newest ``newest`` first, read as ``who`` through the guarded path."""
    query = (
        exp.select(*[col(c) for c in store.visible(who, spec, [*spec.keys, *wanted])])
        .from_(source(spec))
        .where(exp.and_(where, live_rows()))
    )
    order = [exp.Ordered(this=col(newest), desc=True, nulls_first=False)] if newest else []
    order += [exp.Ordered(this=col(k), nulls_first=True) for k in spec.keys]
    found, _ = store.fetch(who, query.order_by(*order), limit=limit)
    return found


def where_key(**values: str) -> exp.Expr:
    """``column = 'value' AND ...`` (values escaped by sqlglot)."""
    return exp.and_(*[col(c).eq(string(v)) for c, v in values.items()])
