"""The OMOP concepts the CDM's own fields need, with their published OMOP ids.

Codes of clinical vocabularies (ICD-10, LOINC, ATC, UCUM, local codes) come from the
terminology service (``vocab.*``, ids per ADR 0011). The CDM also needs a handful of
concepts no hospital vocabulary carries: gender, visit and type concepts, condition
status, the "no matching concept" 0. They are added to ``gold.concept`` here with the ids
OHDSI's Athena gives them, so OMOP tools that test for 8507 or 9201 work; a site that loads
an Athena bundle gets the same ids from it (its rows win).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

NO_MATCH = 0
MALE = 8507
FEMALE = 8532
INPATIENT_VISIT = 9201
OUTPATIENT_VISIT = 9202
EMERGENCY_VISIT = 9203
EHR = 32817
LAB = 32856
EHR_PRESCRIPTION = 32838
PRIMARY_DIAGNOSIS = 32902
SECONDARY_DIAGNOSIS = 32908


@dataclass(frozen=True)
class CoreConcept:
    concept_id: int
    concept_name: str
    domain_id: str
    vocabulary_id: str
    concept_class_id: str
    concept_code: str
    standard: bool = True


CORE_CONCEPTS: tuple[CoreConcept, ...] = (
    CoreConcept(NO_MATCH, "No matching concept", "Metadata", "None", "Undefined",
                "No matching concept", standard=False),
    CoreConcept(MALE, "MALE", "Gender", "Gender", "Gender", "M"),
    CoreConcept(FEMALE, "FEMALE", "Gender", "Gender", "Gender", "F"),
    CoreConcept(INPATIENT_VISIT, "Inpatient Visit", "Visit", "Visit", "Visit", "IP"),
    CoreConcept(OUTPATIENT_VISIT, "Outpatient Visit", "Visit", "Visit", "Visit", "OP"),
    CoreConcept(EMERGENCY_VISIT, "Emergency Room Visit", "Visit", "Visit", "Visit", "ER"),
    CoreConcept(EHR, "EHR", "Type Concept", "Type Concept", "Type Concept", "OMOP4976890"),
    CoreConcept(EHR_PRESCRIPTION, "EHR prescription", "Type Concept", "Type Concept",
                "Type Concept", "OMOP4976896"),
    CoreConcept(LAB, "Lab", "Type Concept", "Type Concept", "Type Concept", "OMOP4976929"),
    CoreConcept(PRIMARY_DIAGNOSIS, "Primary diagnosis", "Condition Status",
                "Condition Status", "Condition Status", "OMOP4976972"),
    CoreConcept(SECONDARY_DIAGNOSIS, "Secondary diagnosis", "Condition Status",
                "Condition Status", "Condition Status", "OMOP4976978"),
)  # fmt: skip

#: Vocabularies and domains the core concepts belong to (gold.vocabulary / gold.domain).
CORE_VOCABULARIES = ("None", "Gender", "Visit", "Type Concept", "Condition Status")
CORE_DOMAINS = (
    "Metadata", "Gender", "Race", "Ethnicity", "Visit", "Type Concept", "Condition Status",
    "Condition", "Drug", "Procedure", "Measurement", "Observation", "Unit", "Device",
    "Specimen", "Spec Anatomic Site", "Meas Value", "Route", "Provider", "Note",
)  # fmt: skip

VALID_START = date(1970, 1, 1)
VALID_END = date(2099, 12, 31)

#: Visit concept of each silver encounter_class.
VISIT_CONCEPTS = {
    "inpatient": INPATIENT_VISIT,
    "outpatient": OUTPATIENT_VISIT,
    "emergency": EMERGENCY_VISIT,
}

#: Gender concept of each GB/T 2261.1 sex code (silver.patient.sex_code); others: 0.
GENDER_CONCEPTS = {"1": MALE, "2": FEMALE}
