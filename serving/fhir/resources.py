"""FHIR R4 resources built from silver rows (the mapping table is in docs/fhir.md).

Each :class:`Kind` names the silver table a resource type is built from (through
:class:`~serving.assistant.tools.ToolTables`, so tests can rename them), the columns read,
the search columns (date, codes) and the function that turns one guarded row into the
resource. Rows arrive through :meth:`AccessService.query`: a column the role may not see
comes back null (or masked) and the element is left out.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Self
from zoneinfo import ZoneInfo

from lakehouse.tables.silver.clinical import PROCEDURE, VITAL_SIGN
from lakehouse.tables.silver.documents import NOTE
from lakehouse.tables.silver.imaging import IMAGING_SERIES, IMAGING_STUDY
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.silver.organization import ORG, PROVIDER
from lakehouse.tables.spec import TableSpec
from lakehouse.terminology import ATC, ICD9CM3, ICD10, LOINC
from serving.assistant.tools import ToolTables
from serving.fhir.ids import encode, patient_id

#: Code systems of the standard vocabularies (FHIR URIs) and back.
SYSTEMS = {
    ICD10: "http://hl7.org/fhir/sid/icd-10",
    LOINC: "http://loinc.org",
    ATC: "http://www.whocc.no/atc",
    ICD9CM3: "http://hl7.org/fhir/sid/icd-9-cm",
}
VOCABULARIES = {uri: vocab for vocab, uri in SYSTEMS.items()}
UCUM = "http://unitsofmeasure.org"
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
_UCUM_LIKE = re.compile(r"[A-Za-z0-9%/.*^\[\]{}'\-]{1,32}")

Resource = dict[str, Any]


def source_system_uri(institution: str, source_system: str, kind: str) -> str:
    """Identifier.system of a source id: institution, source system and kind of record."""
    return f"urn:lakehouse:{institution}:{source_system}:{kind}"


def visit_system_uri(institution: str) -> str:
    """Identifier.system of an institution's visit numbers (门诊号 / 住院号)."""
    return f"urn:lakehouse:{institution}:visit"


@dataclass(frozen=True)
class FhirTables(ToolTables):
    """The assistant's silver tables and the further ones the FHIR API reads (tests and
    other deployments pass renamed specs; a plain :class:`ToolTables` gets these defaults)."""

    vital_sign: TableSpec = VITAL_SIGN
    procedure: TableSpec = PROCEDURE
    note: TableSpec = NOTE
    note_deid: TableSpec = NOTE_DEID
    imaging_study: TableSpec = IMAGING_STUDY
    imaging_series: TableSpec = IMAGING_SERIES
    org: TableSpec = ORG
    provider: TableSpec = PROVIDER

    @classmethod
    def of(cls, tables: ToolTables) -> Self:
        """``tables`` when it is one of these already, else these with the tables it has
        and the defaults for the rest."""
        if isinstance(tables, cls):
            return tables
        return cls(
            **{f: getattr(tables, f) for f in cls.__dataclass_fields__ if hasattr(tables, f)}
        )

    def fhir(self) -> tuple[TableSpec, ...]:
        """Every table the FHIR API reads."""
        return (
            *self.all(),
            self.vital_sign,
            self.procedure,
            self.note,
            self.note_deid,
            self.imaging_study,
            self.imaging_series,
            self.org,
            self.provider,
        )


@dataclass(frozen=True)
class Group:
    """Rows aggregated into one resource (DiagnosticReport: the results of one order):
    the grouping columns and ``(alias, Spark SQL aggregate)`` pairs."""

    by: tuple[str, ...]
    aggregates: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Kind:
    """One resource type from one silver table: columns, search columns and builder.

    A type built from several tables (Observation: laboratory and vital signs) has one
    kind per table, told apart by ``tag`` (an extra id part) and ``category``."""

    type: str
    table: Callable[[FhirTables], TableSpec]
    key: str
    columns: tuple[str, ...]
    build: Callable[[dict[str, Any], ZoneInfo], Resource]
    date: str | None = None
    date_param: str = "date"
    codes: tuple[tuple[str, str], ...] = ()
    #: Extra id part after the source system ("vs": vital signs), "" for none.
    tag: str = ""
    #: Observation category code this kind answers (``category`` search).
    category: str | None = None
    #: Whether rows belong to a patient (``patient`` search, ``$everything``, export).
    patient_linked: bool = True
    group: Group | None = None

    @property
    def clinical(self) -> bool:
        """Keyed by institution, source system and source id (not a Patient)."""
        return self.type != "Patient"

    @property
    def width(self) -> int:
        """Parts of this kind's ids."""
        return 2 if not self.clinical else 4 if self.tag else 3

    def id_of(self, row: dict[str, Any]) -> str:
        if not self.clinical:
            return patient_id(row["institution_code"], row["patient_id"])
        return record_id(row, self.key, self.tag)


def record_id(row: dict[str, Any], key: str, tag: str = "") -> str:
    """The FHIR id of a silver row keyed by institution, source system and ``key``."""
    tagged = (tag,) if tag else ()
    return encode(row["institution_code"], row["source_system"], *tagged, row[key])


def _when(value: datetime | date | None, zone: ZoneInfo) -> str | None:
    """A FHIR dateTime in the lakehouse's zone, with its offset.

    A timestamp without zone is what PySpark hands Python for a Spark timestamp: the instant
    as wall-clock time of the *Python process's* local zone (not Spark's session zone), so it
    is converted to ``zone`` (the same wall clock where the host runs in the hospital's zone;
    a host in UTC gave the hospital's times 8 hours early before, found by the round trip of
    ``tests/integration/serving/test_fhir_export_lakehouse.py``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat()
    return value.isoformat()


def _drop_empty(resource: Resource) -> Resource:
    """The resource without null, empty or all-empty elements (FHIR forbids empty ones)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            d = {k: clean(x) for k, x in v.items()}
            return {k: x for k, x in d.items() if x not in (None, "", [], {})}
        if isinstance(v, list):
            return [x for x in (clean(x) for x in v) if x not in (None, "", [], {})]
        return v

    out: Resource = clean(resource)
    return out


def _coding(vocab: str | None, code: str | None, display: str | None, inst: str) -> Resource:
    if not code:
        return {}
    system = SYSTEMS.get(vocab or "")
    if system is None and vocab:
        system = f"urn:lakehouse:{inst}:vocabulary:{vocab}"
    return {"system": system, "code": code, "display": display}


def _concept(
    row: dict[str, Any], standard: tuple[str, str, str], source: tuple[str, str, str]
) -> Resource:
    """CodeableConcept: the standard coding first, then the code the source sent."""
    inst = row["institution_code"]
    std = _coding(row.get(standard[0]), row.get(standard[1]), row.get(standard[2]), inst)
    src = _coding(row.get(source[0]), row.get(source[1]), row.get(source[2]), inst)
    codings = [std] if std else []
    if src and (src.get("code"), src.get("system")) != (std.get("code"), std.get("system")):
        codings.append(src)
    text = row.get(standard[2]) or row.get(source[2])
    return {"coding": codings, "text": text}


def _ref(row: dict[str, Any]) -> Resource:
    return {"reference": f"Patient/{patient_id(row['institution_code'], row['patient_id'])}"}


def _encounter_ref(row: dict[str, Any]) -> Resource | None:
    if not row.get("encounter_id"):
        return None
    system = visit_system_uri(row["institution_code"])
    return {"identifier": {"system": system, "value": row["encounter_id"]}}


def _identifier(row: dict[str, Any], kind: str, key: str) -> list[Resource]:
    system = source_system_uri(row["institution_code"], row["source_system"], kind)
    return [{"use": "official", "system": system, "value": row[key]}]


def _quantity(value: Any, unit: str | None) -> Resource | None:
    if value is None:
        return None
    q: Resource = {"value": value, "unit": unit}
    if unit and _UCUM_LIKE.fullmatch(unit):
        q.update(system=UCUM, code=unit)
    return q


# -- Patient -------------------------------------------------------------------------------
_GENDER = {"1": "male", "2": "female", "0": "unknown", "9": "unknown"}


def build_patient(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    identifiers = _identifier(row, "patient", "patient_id")
    for system, value in sorted((row.get("identifiers") or {}).items()):
        if value:
            identifiers.append(
                {"system": system if ":" in system else f"urn:{system}", "value": value}
            )
    return _drop_empty(
        {
            "resourceType": "Patient",
            "id": patient_id(row["institution_code"], row["patient_id"]),
            "identifier": identifiers,
            "name": [{"text": row.get("name")}],
            "gender": _GENDER.get(row.get("sex_code") or ""),
            "birthDate": _when(row.get("birth_date"), zone),
            "telecom": [{"system": "phone", "value": row.get("phone")}] if row.get("phone") else [],
            "address": [
                {
                    "text": row.get("address"),
                    "state": row.get("address_province"),
                    "city": row.get("address_city"),
                    "district": row.get("address_county"),
                    "postalCode": row.get("postcode"),
                }
            ],
        }
    )


# -- Encounter -----------------------------------------------------------------------------
_ACT = f"{_TERMINOLOGY}/v3-ActCode"
_CLASS = {"outpatient": "AMB", "emergency": "EMER", "inpatient": "IMP"}
_ENCOUNTER_STATUS = {"planned", "in-progress", "finished", "cancelled"}


def build_encounter(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    klass = _CLASS.get(row.get("encounter_class") or "")
    status = row.get("status")
    inst = row["institution_code"]
    return _drop_empty(
        {
            "resourceType": "Encounter",
            "id": encode(inst, row["source_system"], row["encounter_id"]),
            "identifier": [
                *_identifier(row, "encounter", "encounter_id"),
                {"use": "usual", "system": visit_system_uri(inst), "value": row["encounter_id"]},
            ],
            "status": status if status in _ENCOUNTER_STATUS else "unknown",
            "class": {"system": _ACT, "code": klass}
            if klass
            else {"system": f"{_TERMINOLOGY}/v3-NullFlavor", "code": "UNK"},
            "subject": _ref(row),
            "participant": [
                {
                    "individual": {
                        "identifier": {
                            "system": source_system_uri(inst, row["source_system"], "staff"),
                            "value": row.get("attending_provider_id"),
                        },
                        "display": row.get("attending_provider_name"),
                    }
                }
            ]
            if row.get("attending_provider_id") or row.get("attending_provider_name")
            else [],
            "period": {
                "start": _when(row.get("start_at"), zone),
                "end": _when(row.get("end_at"), zone),
            },
            "location": [{"location": {"display": row.get("dept_name") or row.get("dept_code")}}],
        }
    )


# -- Condition -----------------------------------------------------------------------------
_CLINICAL = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}


def build_condition(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    status = row.get("clinical_status")
    return _drop_empty(
        {
            "resourceType": "Condition",
            "id": encode(row["institution_code"], row["source_system"], row["diagnosis_id"]),
            "identifier": _identifier(row, "diagnosis", "diagnosis_id"),
            "clinicalStatus": {
                "coding": [{"system": f"{_TERMINOLOGY}/condition-clinical", "code": status}]
            }
            if status in _CLINICAL
            else None,
            "category": [
                {
                    "coding": [
                        {
                            "system": f"{_TERMINOLOGY}/condition-category",
                            "code": "encounter-diagnosis",
                        }
                    ]
                }
            ],
            "code": _concept(
                row,
                ("standard_vocabulary", "standard_code", "standard_name"),
                ("source_vocabulary", "source_code", "source_name"),
            ),
            "subject": _ref(row),
            "encounter": _encounter_ref(row),
            "recordedDate": _when(row.get("diagnosed_at"), zone),
        }
    )


# -- Observation (laboratory) --------------------------------------------------------------
_OBS_STATUS = {"F": "final", "C": "corrected", "P": "preliminary"}
_INTERPRETATION = {"H", "L", "N", "A", "HH", "LL", "AA"}


def build_observation(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    value: Resource = {}
    if row.get("value_std") is not None and row.get("unit_std"):
        value["valueQuantity"] = _quantity(row["value_std"], row["unit_std"])
    elif row.get("value_as_number") is not None:
        value["valueQuantity"] = _quantity(row["value_as_number"], row.get("unit_source"))
    elif row.get("value_source"):
        value["valueString"] = row["value_source"]
    flag = (row.get("abnormal_flag") or "").upper()
    unit = row.get("unit_source")
    low, high = row.get("reference_low"), row.get("reference_high")
    return _drop_empty(
        {
            "resourceType": "Observation",
            "id": encode(row["institution_code"], row["source_system"], row["result_id"]),
            "identifier": _identifier(row, "lab_result", "result_id"),
            "status": _OBS_STATUS.get((row.get("result_status") or "").upper(), "unknown"),
            "category": [
                {
                    "coding": [
                        {"system": f"{_TERMINOLOGY}/observation-category", "code": "laboratory"}
                    ]
                }
            ],
            "code": _concept(
                row,
                ("test_standard_vocabulary", "test_standard_code", "test_standard_name"),
                ("test_source_vocabulary", "test_source_code", "test_source_name"),
            ),
            "subject": _ref(row),
            "encounter": _encounter_ref(row),
            "effectiveDateTime": _when(row.get("collected_at"), zone),
            "issued": _when(row.get("reported_at"), zone),
            **value,
            "interpretation": [
                {
                    "coding": [
                        {
                            "system": f"{_TERMINOLOGY}/v3-ObservationInterpretation",
                            "code": flag,
                        }
                    ]
                }
            ]
            if flag in _INTERPRETATION
            else [],
            "referenceRange": [
                {
                    "low": _quantity(low, unit),
                    "high": _quantity(high, unit),
                    "text": row.get("reference_range_source"),
                }
            ],
            "note": [{"text": row.get("comment")}] if row.get("comment") else [],
        }
    )


# -- MedicationRequest ---------------------------------------------------------------------
_MED_STATUS = {
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
}


def build_medication_request(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    status = row.get("status")
    inst, system = row["institution_code"], row["source_system"]
    words = (row.get("dose"), row.get("dose_unit"), row.get("route"), row.get("frequency"))
    text = " ".join(str(w) for w in words if w not in (None, ""))
    days = row.get("days_supply")
    return _drop_empty(
        {
            "resourceType": "MedicationRequest",
            "id": encode(inst, system, row["medication_order_id"]),
            "identifier": _identifier(row, "medication_order", "medication_order_id"),
            "status": status if status in _MED_STATUS else "unknown",
            "intent": "order",
            "medicationCodeableConcept": _concept(
                row,
                ("drug_standard_vocabulary", "drug_standard_code", "drug_standard_name"),
                ("drug_source_vocabulary", "drug_source_code", "drug_source_name"),
            ),
            "subject": _ref(row),
            "encounter": _encounter_ref(row),
            "authoredOn": _when(row.get("ordered_at"), zone),
            "requester": {
                "identifier": {
                    "system": source_system_uri(inst, system, "staff"),
                    "value": row.get("prescriber_id"),
                }
            }
            if row.get("prescriber_id")
            else None,
            "dosageInstruction": [
                {
                    "text": text,
                    "route": {"text": row.get("route")},
                    "timing": {"code": {"text": row.get("frequency")}},
                    "doseAndRate": [
                        {"doseQuantity": _quantity(row.get("dose"), row.get("dose_unit"))}
                    ],
                }
            ],
            "dispenseRequest": {
                "expectedSupplyDuration": {"value": days, "unit": "d", "system": UCUM, "code": "d"}
            }
            if days is not None
            else None,
        }
    )


# -- Observation (vital signs) -------------------------------------------------------------
_STD = ("standard_vocabulary", "standard_code", "standard_name")
_SRC = ("source_vocabulary", "source_code", "source_name")
_CODES = (("standard_vocabulary", "standard_code"), ("source_vocabulary", "source_code"))


def _category(system: str, code: str) -> list[Resource]:
    return [{"coding": [{"system": f"{_TERMINOLOGY}/{system}", "code": code}]}]


def build_vital_sign(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    unit = row.get("unit_std") or row.get("unit_source")
    quantity = _quantity(row.get("value_as_number"), unit)
    if quantity is not None and row.get("unit_std"):
        quantity.update(system=UCUM, code=row["unit_std"])
    return _drop_empty(
        {
            "resourceType": "Observation",
            "id": record_id(row, "vital_id", "vs"),
            "identifier": _identifier(row, "vital_sign", "vital_id"),
            "status": "final",
            "category": _category("observation-category", "vital-signs"),
            "code": _concept(row, _STD, _SRC),
            "subject": _ref(row),
            "encounter": _encounter_ref(row),
            "effectiveDateTime": _when(row.get("measured_at"), zone),
            "valueQuantity": quantity,
        }
    )


# -- Procedure -----------------------------------------------------------------------------
_PROCEDURE_STATUS = {
    "ordered": "preparation",
    "scheduled": "preparation",
    "preparation": "preparation",
    "in-progress": "in-progress",
    "completed": "completed",
    "done": "completed",
    "cancelled": "not-done",
    "not-done": "not-done",
    "on-hold": "on-hold",
    "stopped": "stopped",
    "entered-in-error": "entered-in-error",
}


def build_procedure(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    inst, system = row["institution_code"], row["source_system"]
    return _drop_empty(
        {
            "resourceType": "Procedure",
            "id": record_id(row, "procedure_id"),
            "identifier": _identifier(row, "procedure", "procedure_id"),
            "status": _PROCEDURE_STATUS.get((row.get("status") or "").lower(), "unknown"),
            "code": _concept(row, _STD, _SRC),
            "subject": _ref(row),
            "encounter": _encounter_ref(row),
            "performedDateTime": _when(row.get("performed_at"), zone),
            "performer": [
                {
                    "actor": {
                        "identifier": {
                            "system": source_system_uri(inst, system, "staff"),
                            "value": row["provider_id"],
                        }
                    }
                }
            ]
            if row.get("provider_id")
            else [],
        }
    )


# -- DiagnosticReport (the lab results of one order) ---------------------------------------
def build_diagnostic_report(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    inst, system = row["institution_code"], row["source_system"]
    results = sorted(row.get("result_ids") or [])
    panel = row.get("panel_code")
    return _drop_empty(
        {
            "resourceType": "DiagnosticReport",
            "id": record_id(row, "order_id"),
            "identifier": _identifier(row, "lab_order", "order_id"),
            "status": "final" if row.get("all_final") else "partial",
            "category": _category("v2-0074", "LAB"),
            "code": {
                "coding": [_coding(f"LOCAL:{inst}:panel", panel, row.get("panel_name"), inst)]
                if panel
                else [],
                "text": row.get("panel_name") or panel or "Laboratory report",
            },
            "subject": _ref(row),
            "encounter": _encounter_ref(row),
            "effectiveDateTime": _when(row.get("effective_at"), zone),
            "issued": _when(row.get("issued_at"), zone),
            "result": [{"reference": f"Observation/{encode(inst, system, r)}"} for r in results],
        }
    )


# -- DocumentReference (clinical notes) ----------------------------------------------------
#: Security label of a note whose text is the de-identified one (v3-ObservationValue).
DEID_LABEL = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "MASKED",
    "display": "masked",
}


def build_document_reference(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    """A note; ``text`` is the note text the store chose (raw where the policy lets the
    role read it, else the de-identified text, else none) and ``text_deid`` says which."""
    text = row.get("text")
    attachment: Resource = {
        "contentType": "text/plain; charset=utf-8",
        "language": {"zh": "zh-CN", "en": "en"}.get(row.get("language") or ""),
        "title": row.get("note_title"),
    }
    if text:
        attachment["data"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return _drop_empty(
        {
            "resourceType": "DocumentReference",
            "id": record_id(row, "note_id"),
            "identifier": _identifier(row, "note", "note_id"),
            "status": "current",
            "type": {"text": row.get("note_type")},
            "category": [{"text": "clinical-note"}],
            "subject": _ref(row),
            "date": _when(row.get("recorded_at"), zone),
            "author": [{"display": row.get("author_name")}] if row.get("author_name") else [],
            "securityLabel": [{"coding": [DEID_LABEL]}] if row.get("text_deid") else [],
            "content": [{"attachment": attachment}],
            "context": {
                "encounter": [_encounter_ref(row)] if row.get("encounter_id") else [],
                "period": {"start": _when(row.get("recorded_at"), zone)},
            },
        }
    )


# -- ImagingStudy --------------------------------------------------------------------------
DICOM = "http://dicom.nema.org/resources/ontology/DCM"


def build_imaging_study(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    inst = row["institution_code"]
    series = [
        {
            "uid": s["series_instance_uid"],
            "modality": {"system": DICOM, "code": s.get("modality") or "OT"},
            "description": s.get("series_description"),
            "numberOfInstances": s.get("instance_count"),
            "bodySite": {"display": s.get("body_part")} if s.get("body_part") else None,
        }
        for s in row.get("series") or []
    ]
    return _drop_empty(
        {
            "resourceType": "ImagingStudy",
            "id": record_id(row, "study_instance_uid"),
            "identifier": [
                {
                    "use": "official",
                    "system": "urn:dicom:uid",
                    "value": f"urn:oid:{row['study_instance_uid']}",
                },
                {
                    "use": "usual",
                    "type": {"coding": [{"system": f"{_TERMINOLOGY}/v2-0203", "code": "ACSN"}]},
                    "system": f"urn:lakehouse:{inst}:accession",
                    "value": row.get("accession_number"),
                }
                if row.get("accession_number")
                else None,
            ],
            "status": "available",
            "modality": [{"system": DICOM, "code": m} for m in row.get("modalities") or []],
            "subject": _ref(row),
            "encounter": _encounter_ref(row),
            "started": _when(row.get("study_at"), zone),
            "numberOfSeries": row.get("series_count"),
            "numberOfInstances": row.get("instance_count"),
            "description": row.get("study_description"),
            "series": series,
        }
    )


# -- Organization and Practitioner ---------------------------------------------------------
def build_organization(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    oid = row.get("org_oid")
    return _drop_empty(
        {
            "resourceType": "Organization",
            "id": record_id(row, "org_code"),
            "identifier": [
                *_identifier(row, "organization", "org_code"),
                {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{oid}"} if oid else None,
            ],
            "active": True,
            "type": [{"text": row.get("org_kind")}],
            "name": row.get("org_name"),
        }
    )


def build_practitioner(row: dict[str, Any], zone: ZoneInfo) -> Resource:
    return _drop_empty(
        {
            "resourceType": "Practitioner",
            "id": record_id(row, "provider_id"),
            "identifier": _identifier(row, "staff", "provider_id"),
            "active": True,
            "name": [{"text": row.get("provider_name")}],
            "qualification": [{"code": {"text": row.get("title")}}],
        }
    )


_COMMON = ("institution_code", "source_system", "patient_id")

#: Every kind, in the CapabilityStatement's order (the first of a type is its main one).
ALL_KINDS: tuple[Kind, ...] = (
        Kind(
            "Patient",
            lambda t: t.patient,
            "patient_id",
            (
                *_COMMON, "identifiers", "name", "sex_code", "birth_date", "phone", "address",
                "address_province", "address_city", "address_county", "postcode",
                "source_updated_at",
            ),
            build_patient,
            date="birth_date",
            date_param="birthdate",
        ),
        Kind(
            "Encounter",
            lambda t: t.encounter,
            "encounter_id",
            (
                *_COMMON, "encounter_id", "encounter_class", "status", "dept_code", "dept_name",
                "attending_provider_id", "attending_provider_name", "start_at", "end_at",
            ),
            build_encounter,
            date="start_at",
        ),
        Kind(
            "Condition",
            lambda t: t.diagnosis,
            "diagnosis_id",
            (
                *_COMMON, "diagnosis_id", "encounter_id", "source_code", "source_vocabulary",
                "source_name", "standard_code", "standard_vocabulary", "standard_name",
                "clinical_status", "diagnosed_at",
            ),
            build_condition,
            date="diagnosed_at",
            codes=(("standard_vocabulary", "standard_code"), ("source_vocabulary", "source_code")),
        ),
        Kind(
            "Observation",
            lambda t: t.lab_result,
            "result_id",
            (
                *_COMMON, "result_id", "encounter_id", "test_source_code",
                "test_source_vocabulary", "test_source_name", "test_standard_code",
                "test_standard_vocabulary", "test_standard_name", "value_source",
                "value_as_number", "unit_source", "value_std", "unit_std",
                "reference_range_source", "reference_low", "reference_high", "abnormal_flag",
                "result_status", "collected_at", "reported_at", "comment",
            ),
            build_observation,
            date="collected_at",
            category="laboratory",
            codes=(
                ("test_standard_vocabulary", "test_standard_code"),
                ("test_source_vocabulary", "test_source_code"),
            ),
        ),
        Kind(
            "MedicationRequest",
            lambda t: t.medication_order,
            "medication_order_id",
            (
                *_COMMON, "medication_order_id", "encounter_id", "drug_source_code",
                "drug_source_vocabulary", "drug_source_name", "drug_standard_code",
                "drug_standard_vocabulary", "drug_standard_name", "dose", "dose_unit", "route",
                "frequency", "days_supply", "status", "prescriber_id", "ordered_at",
            ),
            build_medication_request,
            date="ordered_at",
            codes=(
                ("drug_standard_vocabulary", "drug_standard_code"),
                ("drug_source_vocabulary", "drug_source_code"),
            ),
        ),
        Kind(
            "Observation",
            lambda t: t.vital_sign,
            "vital_id",
            (
                *_COMMON, "vital_id", "encounter_id", "source_code", "source_vocabulary",
                "source_name", "standard_code", "standard_vocabulary", "standard_name",
                "value_as_number", "unit_source", "unit_std", "measured_at",
            ),
            build_vital_sign,
            date="measured_at",
            codes=_CODES,
            tag="vs",
            category="vital-signs",
        ),
        Kind(
            "Procedure",
            lambda t: t.procedure,
            "procedure_id",
            (
                *_COMMON, "procedure_id", "encounter_id", "source_code", "source_vocabulary",
                "source_name", "standard_code", "standard_vocabulary", "standard_name",
                "status", "provider_id", "performed_at",
            ),
            build_procedure,
            date="performed_at",
            codes=_CODES,
        ),
        Kind(
            "DiagnosticReport",
            lambda t: t.lab_result,
            "order_id",
            (*_COMMON, "order_id"),
            build_diagnostic_report,
            date="collected_at",
            codes=(("", "panel_code"),),
            group=Group(
                by=(*_COMMON, "order_id"),
                aggregates=(
                    ("panel_code", "MAX(panel_code)"),
                    ("panel_name", "MAX(panel_name)"),
                    ("encounter_id", "MAX(encounter_id)"),
                    ("effective_at", "MIN(collected_at)"),
                    ("issued_at", "MAX(reported_at)"),
                    ("result_ids", "COLLECT_LIST(result_id)"),
                    ("all_final", "BOOL_AND(COALESCE(result_status, '') IN ('F', 'C'))"),
                ),
            ),
        ),
        Kind(
            "DocumentReference",
            lambda t: t.note,
            "note_id",
            (
                *_COMMON, "note_id", "encounter_id", "note_type", "note_title", "language",
                "note_text", "author_name", "recorded_at",
            ),
            build_document_reference,
            date="recorded_at",
        ),
        Kind(
            "ImagingStudy",
            lambda t: t.imaging_study,
            "study_instance_uid",
            (
                *_COMMON, "study_instance_uid", "encounter_id", "accession_number",
                "modalities", "study_description", "body_part", "study_at", "series_count",
                "instance_count",
            ),
            build_imaging_study,
            date="study_at",
        ),
        Kind(
            "Organization",
            lambda t: t.org,
            "org_code",
            ("institution_code", "source_system", "org_code", "org_name", "org_oid", "org_kind"),
            build_organization,
            patient_linked=False,
        ),
        Kind(
            "Practitioner",
            lambda t: t.provider,
            "provider_id",
            ("institution_code", "source_system", "provider_id", "provider_name", "title"),
            build_practitioner,
            patient_linked=False,
        ),
)  # fmt: skip

#: The kinds of each type (Observation: laboratory, then vital signs).
VARIANTS: dict[str, tuple[Kind, ...]] = {}
for _k in ALL_KINDS:
    VARIANTS[_k.type] = (*VARIANTS.get(_k.type, ()), _k)
#: The main kind of each type.
KINDS: dict[str, Kind] = {t: ks[0] for t, ks in VARIANTS.items()}
