"""FHIR R4 resources built from silver rows (the mapping table is in docs/fhir.md).

Each :class:`Kind` names the silver table a resource type is built from (through
:class:`~serving.assistant.tools.ToolTables`, so tests can rename them), the columns read,
the search columns (date, codes) and the function that turns one guarded row into the
resource. Rows arrive through :meth:`AccessService.query`: a column the role may not see
comes back null (or masked) and the element is left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from lakehouse.tables.spec import TableSpec
from lakehouse.terminology import ATC, ICD10, LOINC
from serving.assistant.tools import ToolTables
from serving.fhir.ids import encode, patient_id

#: Code systems of the standard vocabularies (FHIR URIs) and back.
SYSTEMS = {
    ICD10: "http://hl7.org/fhir/sid/icd-10",
    LOINC: "http://loinc.org",
    ATC: "http://www.whocc.no/atc",
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
class Kind:
    """One resource type: its silver table, columns, search columns and builder."""

    type: str
    table: Callable[[ToolTables], TableSpec]
    key: str
    columns: tuple[str, ...]
    build: Callable[[dict[str, Any], ZoneInfo], Resource]
    date: str | None = None
    date_param: str = "date"
    codes: tuple[tuple[str, str], ...] = ()

    @property
    def clinical(self) -> bool:
        return self.type != "Patient"

    def id_of(self, row: dict[str, Any]) -> str:
        if not self.clinical:
            return patient_id(row["institution_code"], row["patient_id"])
        return encode(row["institution_code"], row["source_system"], row[self.key])


def _when(value: datetime | date | None, zone: ZoneInfo) -> str | None:
    """A FHIR dateTime: timestamps are local time in the lakehouse's zone."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone).isoformat()
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


_COMMON = ("institution_code", "source_system", "patient_id")

KINDS: dict[str, Kind] = {
    k.type: k
    for k in (
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
    )
}  # fmt: skip
