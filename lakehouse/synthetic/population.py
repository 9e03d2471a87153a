"""Drawing a clinically coherent population, one patient at a time.

Each patient comes from its own :class:`random.Random` seeded by ``(seed, index)``, so a
patient is the same whatever the chunk size, and nothing holds the whole population. A
person's conditions drive their encounters, labs (diabetes pushes HbA1c and glucose up),
medications, imaging findings and notes.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import date, datetime, timedelta
from typing import Any

from lakehouse.synthetic import catalog
from lakehouse.synthetic.identity import (
    make_address,
    make_chinese_name,
    make_english_name,
    make_id_card,
    make_phone,
    mistype_id_card,
    name_variant,
)
from lakehouse.synthetic.model import (
    REFERENCE_DATE,
    ConditionState,
    Diagnosis,
    Encounter,
    ImagingStudy,
    LabResult,
    LungRisk,
    Medication,
    Patient,
    Person,
    Registration,
    Site,
    Staff,
    Transfer,
)

MAIN_CODE = "H0001"
MEMBER_NAMES = [
    "南山区蛇口社区健康服务中心",
    "福田区第二人民医院",
    "罗湖区中医院",
    "宝安区妇幼保健院",
]
#: Multipliers coprime with 10: local ids are a bijection of the patient index per site.
_ID_MULT = (7919, 104729, 1299709, 15485863, 32452843, 49979687)
WINDOW_DAYS = 730

#: The lung risk (docs/synthetic-hospital.md): weights of its parts, the hidden noise's
#: standard deviation and the threshold above which COPD is recorded (about 22% of persons).
RISK_WEIGHTS = {"age": 1.0, "smoking": 1.4, "emphysema": 1.2}
RISK_NOISE_SD = 0.7
RISK_THRESHOLD = 1.8
#: Chance that a main-site encounter before the person's last one gets a screening chest
#: radiograph when it has no imaging study.
SCREENING_RATE = 0.5


def build_sites(count: int) -> list[Site]:
    """The main tertiary hospital and ``count - 1`` members, alternating FHIR and CSV."""
    sites = [Site(MAIN_CODE, "鹏城大学附属第一医院", "main", "2.16.156.10011.1.9.1")]
    for i in range(1, count):
        kind = "fhir" if i % 2 == 1 else "csv"
        name = MEMBER_NAMES[(i - 1) % len(MEMBER_NAMES)]
        sites.append(Site(f"A{i:04d}", name, kind, f"2.16.156.10011.1.9.{i + 1}"))
    return sites


def build_staff(seed: int, sites: list[Site]) -> dict[str, list[Staff]]:
    """Three doctors per department per site, keyed by ``<site>:<dept>``."""
    rng = random.Random(f"{seed}:staff")
    titles = ["主任医师", "副主任医师", "主治医师"]
    staff: dict[str, list[Staff]] = {}
    for site in sites:
        for dept in catalog.departments():
            staff[f"{site.code}:{dept}"] = [
                Staff(f"{site.code}-{dept}{n:02d}", site.code, make_chinese_name(rng), dept, t)
                for n, t in enumerate(titles, start=1)
            ]
    return staff


def local_id(site_index: int, index: int) -> str:
    return f"{(index * _ID_MULT[site_index % len(_ID_MULT)] + 13 * site_index) % 10**8:08d}"


def _person(rng: random.Random, index: int) -> Person:
    male = rng.random() < 0.49
    age = min(95, max(18, int(rng.gauss(52, 17))))
    birth = REFERENCE_DATE - timedelta(days=age * 365 + rng.randrange(0, 365))
    address = make_address(rng)
    foreign = rng.random() < 0.04
    name = make_english_name(rng) if foreign else make_chinese_name(rng)
    id_card = None if foreign else make_id_card(rng, address.region_code, birth, male)
    passport = f"E{rng.randrange(10**7, 10**8)}" if foreign else None
    ethnicity = "汉族" if rng.random() < 0.92 else rng.choice(["壮族", "回族", "满族", "苗族"])
    return Person(
        f"P{index:08d}",
        name,
        "M" if male else "F",
        birth,
        id_card,
        passport,
        make_phone(rng),
        address,
        ethnicity,
    )


def _conditions(rng: random.Random, person: Person) -> list[ConditionState]:
    age = (REFERENCE_DATE - person.birth_date).days / 365.25
    found = []
    for key, c in catalog.conditions().items():
        p = c["prevalence"] * (1 + c["age_weight"] * (age - 50) / 40)
        if rng.random() < min(0.6, max(0.005, p)):
            if c["chronic"]:
                onset = REFERENCE_DATE - timedelta(days=rng.randrange(WINDOW_DAYS, 365 * 12))
            else:
                onset = REFERENCE_DATE - timedelta(days=rng.randrange(5, WINDOW_DAYS - 5))
            found.append(ConditionState(key, onset, bool(c["chronic"])))
    return found


def _registration(
    rng: random.Random, person: Person, site: Site, index: int, si: int
) -> Registration:
    kinds = ["exact"] * 6 + ["traditional", "pinyin", "typo"]
    variant = "exact" if site.kind == "main" else rng.choice(kinds)
    id_card, id_variant = person.id_card, "exact" if person.id_card else "none"
    if person.id_card and site.kind != "main":
        roll = rng.random()
        if roll < 0.1:
            id_card, id_variant = None, "missing"
        elif roll < 0.15:
            id_card, id_variant = mistype_id_card(rng, person.id_card), "mistyped"
    phone = person.phone if rng.random() < 0.85 else make_phone(rng)
    prefix = {"main": "", "fhir": "F", "csv": "C"}[site.kind]
    system = {"main": "his", "fhir": "fhir", "csv": "csv"}[site.kind]
    return Registration(
        site.code,
        system,
        prefix + local_id(si, index),
        name_variant(rng, person.name, variant),
        variant,
        id_card,
        id_variant,
        phone,
        person.address,
    )


def _lab(rng: random.Random, code: str, active: set[str], at: datetime, lab_id: str) -> LabResult:
    spec = catalog.labs()[code]
    drivers = [
        catalog.conditions()[k]["labs"][code]
        for k in sorted(active)
        if code in catalog.conditions()[k]["labs"]
    ]
    if drivers:
        low, high = drivers[0]
        value = rng.uniform(low, high)
    else:
        value = max(0.1, rng.gauss(spec["mean"], spec["sd"]))
    value = catalog.round_lab(code, value)
    comment = "标本轻度溶血 & 已复核" if rng.random() < 0.03 else None
    flag = catalog.lab_flag(code, value)
    return LabResult(lab_id, code, value, spec["unit"], flag, at, comment)


class _Visit:
    """Builds one encounter's diagnoses, labs, medications and imaging."""

    def __init__(self, rng: random.Random, staff: dict[str, list[Staff]], patient: Patient) -> None:
        self.rng, self.staff, self.patient = rng, staff, patient

    def make(self, site: Site, kind: str, day: date, reason: str | None, n: int) -> Encounter:
        rng, p = self.rng, self.patient
        cond = catalog.conditions()
        dept = "JZK" if kind == "E" else (cond[reason]["dept"] if reason else "PTN")
        start = datetime(day.year, day.month, day.day, rng.randrange(7, 20), rng.randrange(60))
        los = rng.randrange(3, 12) if kind == "I" else 0
        end = start + (
            timedelta(days=los, hours=rng.randrange(1, 6)) if los else timedelta(hours=1)
        )
        doctor = rng.choice(self.staff[f"{site.code}:{dept}"]).staff_id
        prefix = {"O": "MZ", "E": "JZ", "I": "ZY"}[kind]
        visit_no = f"{prefix}{(p.index * 7919) % 10**7:07d}{n:02d}"
        enc = Encounter(
            f"E{p.index:08d}-{n:02d}", site.code, visit_no, kind, start, end, dept, doctor
        )
        active = {
            c.key
            for c in p.conditions
            if c.onset <= day and (c.chronic or (day - c.onset).days < 30)
        }
        keys = ([reason] if reason else []) + sorted(active - {reason} if reason else active)
        if not keys:
            keys = ["checkup"]
        for i, key in enumerate(keys[:4]):
            c = cond[key] if key in cond else catalog.clinical()["checkup"]
            enc.diagnoses.append(
                Diagnosis(f"{enc.encounter_id}-D{i}", key, c["icd10"], c["zh"], i == 0)
            )
        codes = {code for k in active for code in cond[k]["labs"]}
        if kind in "EI" or rng.random() < 0.3:
            codes |= set(catalog.clinical()["routine_labs"])
        if kind == "I":
            enc.bed = f"{rng.randrange(1, 40):02d}床"
            if rng.random() < 0.3:
                to = rng.choice(["PTN", "XXG", "HXK"])
                at = start + timedelta(days=max(1, los // 2), hours=2)
                enc.transfers.append(Transfer(at, dept, to, f"{rng.randrange(1, 40):02d}床"))
        drawn = start + timedelta(minutes=rng.randrange(10, 90))
        for i, code in enumerate(sorted(codes)):
            enc.labs.append(_lab(rng, code, active, drawn, f"{enc.encounter_id}-L{i:02d}"))
        drug_keys = sorted({d for k in active for d in cond[k]["drugs"]})
        for i, dk in enumerate(drug_keys):
            d = catalog.drugs()[dk]
            days = los if kind == "I" else rng.choice([7, 14, 30])
            enc.meds.append(
                Medication(
                    f"{enc.encounter_id}-M{i}",
                    dk,
                    d["dose"],
                    d["unit"],
                    d["route"],
                    d["freq"],
                    max(days, 1),
                    start,
                )
            )
        finding = next((cond[k]["imaging"] for k in sorted(active) if cond[k]["imaging"]), None)
        if site.kind == "main" and (finding or rng.random() < 0.08):
            finding = finding or "normal"
            modality = "CT" if finding == "nodule" else "CR"
            radius = rng.randrange(3, 6) if finding == "nodule" else rng.randrange(9, 15)
            center = (rng.randrange(16, 48), rng.randrange(16, 48))
            at = start + timedelta(hours=2)
            enc.imaging = ImagingStudy(
                f"{enc.encounter_id}-S", modality, finding, center, radius, at
            )
        return enc


def _smoker(smoking: float) -> str:
    return "heavy" if smoking > 1.0 else "light" if smoking > 0.0 else "never"


def lung_risk(seed: int, patient: Patient) -> None:
    """Draw the person's lung risk from its own stream and express it (module docstring).

    The other streams are untouched: a screening radiograph is added to main-site encounters
    before the last one (with ``SCREENING_RATE``), every study of the person shows their
    emphysema, and a score above ``RISK_THRESHOLD`` records COPD (ICD-10 J44.900) as a
    secondary diagnosis of the person's last encounter, the index visit of the features.
    """
    rng = random.Random(f"{seed}:risk:{patient.index}")
    smoking, emph_z, noise = rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, RISK_NOISE_SD)
    age = (REFERENCE_DATE - patient.person.birth_date).days / 365.25
    age_part = (age - 52) / 17 + (0.5 if patient.person.sex == "M" else 0.0)
    emphysema = min(2.5, max(0.0, emph_z))
    score = (
        RISK_WEIGHTS["age"] * age_part
        + RISK_WEIGHTS["smoking"] * smoking
        + RISK_WEIGHTS["emphysema"] * emph_z
        + noise
    )
    ordered = sorted(patient.encounters, key=lambda e: (e.start, e.encounter_id))
    last = ordered[-1] if ordered else None
    screening = 0
    for e in ordered[:-1]:
        center = (rng.randrange(16, 48), rng.randrange(16, 48))
        radius = rng.randrange(9, 15)
        if e.imaging is None and e.site_code == MAIN_CODE and rng.random() < SCREENING_RATE:
            at = e.start + timedelta(hours=2)
            e.imaging = ImagingStudy(f"{e.encounter_id}-S", "CR", "normal", center, radius, at)
            screening += 1
    for e in patient.encounters:
        if e.imaging is not None:
            e.imaging = dataclasses.replace(e.imaging, emphysema=emphysema)
    copd = score > RISK_THRESHOLD and last is not None
    if copd and last is not None:
        spec = catalog.outcomes()["COPD"]
        n = len(last.diagnoses)
        last.diagnoses.append(
            Diagnosis(f"{last.encounter_id}-D{n}", "COPD", spec["icd10"], spec["zh"], False)
        )
    patient.risk = LungRisk(
        age_part=age_part,
        smoking=smoking,
        emphysema=emphysema,
        noise=noise,
        score=score,
        smoker=_smoker(smoking),
        copd=copd,
        copd_encounter_id=last.encounter_id if copd and last is not None else None,
        screening_studies=screening,
    )


def generate_patient(
    seed: int, index: int, sites: list[Site], staff: dict[str, list[Staff]]
) -> Patient:
    """Patient number ``index`` of the hospital seeded ``seed`` (independent of the others)."""
    rng = random.Random(f"{seed}:patient:{index}")
    person = _person(rng, index)
    conditions = _conditions(rng, person)
    regs: dict[str, Registration] = {}
    for si, site in enumerate(sites):
        if rng.random() < (0.9 if site.kind == "main" else 0.35):
            regs[site.code] = _registration(rng, person, site, index, si)
    if not regs:
        regs[sites[0].code] = _registration(rng, person, sites[0], index, 0)
    family = [k for k in catalog.conditions() if rng.random() < 0.05]
    patient = Patient(index, person, conditions, regs, [], family)
    visit = _Visit(rng, staff, patient)
    n = 0
    for site in sites:
        if site.code not in regs:
            continue
        plan: list[tuple[str, date, str | None]] = []
        for c in conditions:
            spec: dict[str, Any] = catalog.conditions()[c.key]
            if not c.chronic and site.kind == "main":
                plan.append(("I" if spec.get("inpatient") else "O", c.onset, c.key))
        visits = rng.randrange(1, 4) if site.kind == "main" else rng.randrange(1, 3)
        for _ in range(visits):
            day = REFERENCE_DATE - timedelta(days=rng.randrange(1, WINDOW_DAYS))
            chronic = [c.key for c in conditions if c.chronic and c.onset <= day]
            plan.append(("O", day, rng.choice(chronic) if chronic else None))
        if site.kind == "main" and rng.random() < 0.12:
            plan.append(("E", REFERENCE_DATE - timedelta(days=rng.randrange(1, WINDOW_DAYS)), None))
        if site.kind == "main" and rng.random() < 0.08:
            day = REFERENCE_DATE - timedelta(days=rng.randrange(20, WINDOW_DAYS))
            plan.append(("I", day, None))
        for kind, day, reason in sorted(plan, key=lambda x: (x[1], x[0])):
            patient.encounters.append(visit.make(site, kind, day, reason, n))
            n += 1
    lung_risk(seed, patient)
    return patient
