"""The true state of the synthetic hospital: sites, staff, people and what happened to them.

These records are the ground truth. Emitters render them into each source system's format
(with the dirt a real feed has); the truth writer stores them as they really are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from lakehouse.synthetic.identity import Address

#: The fixed "today" of every synthetic hospital: nothing depends on the wall clock.
REFERENCE_DATE = date(2026, 6, 30)

SiteKind = str  # "main" | "fhir" | "csv"


@dataclass(frozen=True)
class Site:
    """An institution of the alliance and how it delivers data."""

    code: str
    name: str
    kind: SiteKind
    oid: str


@dataclass(frozen=True)
class Staff:
    staff_id: str
    site_code: str
    name: str
    dept: str
    title: str


@dataclass(frozen=True)
class Person:
    """Who someone really is."""

    person_id: str
    name: str
    sex: str  # "M" | "F"
    birth_date: date
    id_card: str | None  # None for foreigners (passport instead)
    passport: str | None
    phone: str
    address: Address
    ethnicity: str


@dataclass(frozen=True)
class Registration:
    """How one site recorded the person (the master patient index must link these)."""

    site_code: str
    source_system: str
    local_id: str
    name: str
    name_variant: str  # exact | traditional | pinyin | typo
    id_card: str | None
    id_variant: str  # exact | missing | mistyped | none
    phone: str
    address: Address


@dataclass(frozen=True)
class ConditionState:
    key: str  # catalog key, e.g. T2DM
    onset: date
    chronic: bool


@dataclass(frozen=True)
class Diagnosis:
    dx_id: str
    key: str
    icd10: str
    name: str
    primary: bool


@dataclass(frozen=True)
class LabResult:
    lab_id: str
    code: str
    value: float  # in the catalog's unit
    unit: str
    flag: str
    collected_at: datetime
    comment: str | None = None


@dataclass(frozen=True)
class Medication:
    med_id: str
    drug: str
    dose: float
    unit: str
    route: str
    freq: str
    days: int
    start: datetime


@dataclass(frozen=True)
class Transfer:
    at: datetime
    from_dept: str
    to_dept: str
    bed: str


@dataclass(frozen=True)
class ImagingStudy:
    study_id: str
    modality: str  # CR | CT
    finding: str  # normal | consolidation | nodule
    center: tuple[int, int]
    radius: int
    performed_at: datetime
    #: Emphysema severity (0 = none): darker, larger lung fields (``dicom.pixels``).
    emphysema: float = 0.0


@dataclass(frozen=True)
class LungRisk:
    """The latent lung risk behind the COPD outcome (docs/synthetic-hospital.md).

    Each part shows in one modality: age and sex in the tabular record, ``smoking`` in the
    notes (as a smoking-history sentence), ``emphysema`` in chest images. ``score`` adds
    them and a hidden ``noise``; a score above the threshold records COPD at the person's
    last encounter.
    """

    age_part: float
    smoking: float
    emphysema: float
    noise: float
    score: float
    smoker: str  # heavy | light | never
    copd: bool
    copd_encounter_id: str | None
    screening_studies: int


@dataclass
class Encounter:
    encounter_id: str
    site_code: str
    visit_no: str
    kind: str  # O outpatient | E emergency | I inpatient
    start: datetime
    end: datetime
    dept: str
    doctor: str  # staff_id
    bed: str | None = None
    diagnoses: list[Diagnosis] = field(default_factory=list)
    labs: list[LabResult] = field(default_factory=list)
    meds: list[Medication] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    imaging: ImagingStudy | None = None


@dataclass
class Patient:
    """One person with everything that happened to them, at every site."""

    index: int
    person: Person
    conditions: list[ConditionState]
    registrations: dict[str, Registration]
    encounters: list[Encounter]
    family: list[str] = field(default_factory=list)  # condition keys of relatives
    risk: LungRisk | None = None

    def at(self, site_code: str) -> list[Encounter]:
        return [e for e in self.encounters if e.site_code == site_code]
