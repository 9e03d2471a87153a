"""An alliance member delivering FHIR R4 bulk NDJSON.

Per chunk of patients: ``Patient``, ``Encounter``, ``Condition``, ``Observation`` and
``MedicationRequest`` files named ``<Type>.<chunk>.ndjson``, one resource per line, keys
sorted. Observations carry LOINC and the site's local lab code; dates carry the +08:00
offset. Dirt: Patient.birthDate missing, Observation values in another unit or impossible.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from lakehouse.synthetic import catalog
from lakehouse.synthetic.dirt import DefectCode, Dirt, Landing
from lakehouse.synthetic.model import Encounter, LabResult, Patient, Site
from lakehouse.synthetic.truth import TruthWriter

TYPES = ("Patient", "Encounter", "Condition", "Observation", "MedicationRequest")
_CLASS = {
    "O": ("AMB", "ambulatory"),
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
}
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S+08:00")


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


class FhirSite:
    """Collects one chunk's resources for one member site and writes the NDJSON files."""

    def __init__(self, site: Site, landing: Landing, truth: TruthWriter) -> None:
        self.site, self.landing, self.truth = site, landing, truth
        self.lines: dict[str, list[str]] = {t: [] for t in TYPES}

    def _add(self, resource: dict[str, Any]) -> None:
        line = json.dumps(resource, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        self.lines[resource["resourceType"]].append(line)

    def add_patient(self, p: Patient, chunk: int, dirt: Dirt) -> None:
        reg = p.registrations.get(self.site.code)
        if reg is None:
            return
        pid = f"pat-{reg.local_id}"
        ref = {"reference": f"Patient/{pid}"}
        idents = [{"system": f"urn:oid:{self.site.oid}.1", "value": reg.local_id, "use": "usual"}]
        if reg.id_card:
            idents.append({"system": "urn:oid:2.16.156.10011.1.3", "value": reg.id_card})
        a = reg.address
        patient: dict[str, Any] = {
            "resourceType": "Patient",
            "id": pid,
            "identifier": idents,
            "name": [{"text": reg.name}],
            "gender": "male" if p.person.sex == "M" else "female",
            "birthDate": p.person.birth_date.isoformat(),
            "telecom": [{"system": "phone", "value": reg.phone, "use": "mobile"}],
            "address": [
                {
                    "text": a.text,
                    "line": [a.street],
                    "district": a.district,
                    "city": a.city,
                    "state": a.province,
                    "postalCode": a.postcode,
                    "country": "CN",
                }
            ],
        }
        file = self.landing.path("fhir", self.site.code, f"Patient.{chunk:05d}.ndjson")
        if dirt.roll("missing_field"):
            del patient["birthDate"]
            dirt.record(
                DefectCode.MISSING_FIELD, "fhir", self.site.code, file, pid, "Patient.birthDate"
            )
        self._add(patient)
        for e in p.at(self.site.code):
            self._encounter(p, e, ref, chunk, dirt)

    def _encounter(
        self, p: Patient, e: Encounter, ref: dict[str, str], chunk: int, dirt: Dirt
    ) -> None:
        eid = f"enc-{e.visit_no}"
        eref = {"reference": f"Encounter/{eid}"}
        code, label = _CLASS[e.kind]
        self._add(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": "finished",
                "class": _coding(f"{TERMINOLOGY}/v3-ActCode", code, label),
                "subject": ref,
                "period": {"start": iso(e.start), "end": iso(e.end)},
                "serviceProvider": {"display": self.site.name},
            }
        )
        for d in e.diagnoses:
            self._add(
                {
                    "resourceType": "Condition",
                    "id": f"cond-{d.dx_id}",
                    "clinicalStatus": {
                        "coding": [_coding(f"{TERMINOLOGY}/condition-clinical", "active")]
                    },
                    "verificationStatus": {
                        "coding": [_coding(f"{TERMINOLOGY}/condition-ver-status", "confirmed")]
                    },
                    "category": [
                        {
                            "coding": [
                                _coding(f"{TERMINOLOGY}/condition-category", "encounter-diagnosis")
                            ]
                        }
                    ],
                    "code": {
                        "coding": [_coding("http://hl7.org/fhir/sid/icd-10", d.icd10, d.name)],
                        "text": d.name,
                    },
                    "subject": ref,
                    "encounter": eref,
                    "recordedDate": iso(e.start),
                }
            )
        for lab in e.labs:
            self._observation(p, lab, ref, eref, chunk, dirt)
        for m in e.meds:
            drug = catalog.drugs()[m.drug]
            self._add(
                {
                    "resourceType": "MedicationRequest",
                    "id": f"mr-{m.med_id}",
                    "status": "completed",
                    "intent": "order",
                    "subject": ref,
                    "encounter": eref,
                    "authoredOn": iso(m.start),
                    "medicationCodeableConcept": {
                        "coding": [_coding("http://www.whocc.no/atc", drug["atc"], drug["en"])],
                        "text": drug["zh"],
                    },
                    "dosageInstruction": [
                        {
                            "text": f"{m.dose:g}{m.unit} {m.freq} {m.route}",
                            "route": {"text": m.route},
                            "doseAndRate": [{"doseQuantity": {"value": m.dose, "unit": m.unit}}],
                        }
                    ],
                }
            )

    def _observation(
        self,
        p: Patient,
        lab: LabResult,
        ref: dict[str, str],
        eref: dict[str, str],
        chunk: int,
        dirt: Dirt,
    ) -> None:
        spec = catalog.labs()[lab.code]
        oid = f"obs-{lab.lab_id}"
        file = self.landing.path("fhir", self.site.code, f"Observation.{chunk:05d}.ndjson")
        value, unit, ucum, low, high = (
            lab.value,
            spec["unit"],
            spec["ucum"],
            spec["low"],
            spec["high"],
        )
        if "alt_unit" in spec and dirt.roll("unit_variant"):
            f = float(spec["alt_factor"])
            value, unit, ucum, low, high = (
                value * f,
                spec["alt_unit"],
                spec["alt_unit"],
                low * f,
                high * f,
            )
            dirt.record(
                DefectCode.UNIT_VARIANT,
                "fhir",
                self.site.code,
                file,
                oid,
                f"{spec['unit']} -> {unit}",
            )
        value = round(value, 3)
        if dirt.roll("out_of_range"):
            value = round(value * 100, 3)
            dirt.record(DefectCode.OUT_OF_RANGE, "fhir", self.site.code, file, oid, "value x100")
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "category": [
                {"coding": [_coding(f"{TERMINOLOGY}/observation-category", "laboratory")]}
            ],
            "code": {
                "coding": [
                    _coding("http://loinc.org", spec["loinc"], spec["en"]),
                    _coding(f"urn:oid:{self.site.oid}.2", lab.code, spec["zh"]),
                ],
                "text": spec["zh"],
            },
            "subject": ref,
            "encounter": eref,
            "effectiveDateTime": iso(lab.collected_at),
            "valueQuantity": {
                "value": value,
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": ucum,
            },
            "referenceRange": [
                {
                    "low": {"value": round(low, 3), "unit": unit},
                    "high": {"value": round(high, 3), "unit": unit},
                }
            ],
        }
        if lab.flag != "N":
            obs["interpretation"] = [
                {"coding": [_coding(f"{TERMINOLOGY}/v3-ObservationInterpretation", lab.flag)]}
            ]
        self._add(obs)
        self.truth.add_lab(
            lab,
            encounter_id=lab.lab_id.rsplit("-", 1)[0],
            person_id=p.person.person_id,
            institution_code=self.site.code,
            source_system="fhir",
            reported_value=value,
            reported_unit=unit,
            file=file,
            record_id=oid,
        )

    def flush(self, chunk: int, dirt: Dirt) -> None:
        for rtype, lines in self.lines.items():
            if lines:
                data = ("\n".join(lines) + "\n").encode("utf-8")
                self.landing.deliver(
                    dirt, "fhir", self.site.code, f"{rtype}.{chunk:05d}.ndjson", data, len(lines)
                )
            lines.clear()
