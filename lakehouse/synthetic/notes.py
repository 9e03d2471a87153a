"""Free-text notes (progress, nursing, radiology) with exact span annotations.

Mostly Chinese, some English. A note is assembled piece by piece, so every entity mention
(condition, symptom, imaging finding) and every PHI span (name, 身份证号, phone, address,
date) is known with its character offsets (Python ``str`` indices into the UTF-8 text of the
file) and, for entities, its assertion status: present, negated, possible, family,
historical. Phrase templates live in ``data/phrases.json``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from lakehouse.synthetic import catalog
from lakehouse.synthetic.dirt import Dirt, Landing
from lakehouse.synthetic.model import Encounter, Patient, Registration, Site, Staff
from lakehouse.synthetic.truth import TruthWriter
from lakehouse.synthetic.wording import conditions_at, part_of, varied_assertions


@dataclass
class Span:
    start: int
    end: int
    kind: str  # entity | phi
    label: str  # CONDITION, SYMPTOM, FINDING, RISK_FACTOR | NAME, ID_CARD, PHONE, ADDRESS, DATE
    assertion: str | None
    concept: str | None


@dataclass
class NoteBuilder:
    """Appends text and remembers the offsets of what it annotates."""

    parts: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    length: int = 0

    def text(self, value: str) -> None:
        self.parts.append(value)
        self.length += len(value)

    def mark(
        self,
        value: str,
        kind: str,
        label: str,
        assertion: str | None = None,
        concept: str | None = None,
    ) -> None:
        self.spans.append(
            Span(self.length, self.length + len(value), kind, label, assertion, concept)
        )
        self.text(value)

    def phrase(
        self, template: str, value: str, label: str, assertion: str, concept: str, **fill: str
    ) -> None:
        """A template with ``{c}`` where the annotated mention goes."""
        before, _, after = template.partition("{c}")
        self.text(before.format(**fill))
        self.mark(value, "entity", label, assertion, concept)
        self.text(after.format(**fill))

    def build(self) -> str:
        return "".join(self.parts)


def _phi_header(b: NoteBuilder, reg: Registration, lang: str, when: str) -> None:
    zh = lang == "zh"
    b.text("姓名：" if zh else "Patient: ")
    b.mark(reg.name, "phi", "NAME")
    if reg.id_card:
        b.text("  身份证号：" if zh else ", ID card ")
        b.mark(reg.id_card, "phi", "ID_CARD")
    b.text("\n联系电话：" if zh else "\nPhone: ")
    b.mark(reg.phone, "phi", "PHONE")
    b.text("  住址：" if zh else "  Address: ")
    b.mark(reg.address.text, "phi", "ADDRESS")
    b.text("\n记录时间：" if zh else "\nDate: ")
    b.mark(when, "phi", "DATE")
    b.text("\n")


def _assertions(b: NoteBuilder, rng: random.Random, p: Patient, e: Encounter, lang: str) -> None:
    ph, cond = catalog.phrases(), catalog.conditions()
    active, past, absent = conditions_at(p, e)
    name = "zh" if lang == "zh" else "en"
    n = str(rng.randrange(1, 11))

    def say(status: str, key: str, label: str = "CONDITION", text: str | None = None) -> None:
        template = rng.choice(ph["assertions"][status][lang])
        value = text or cond[key][name]
        relatives = ph["relatives"][lang]
        b.phrase(template, value, label, status, key, n=n, r=rng.choice(relatives))
        b.text("" if lang == "zh" else " ")

    for key in active:
        say("present", key)
    for key in past:
        say("historical", key)
    for key in rng.sample(absent, min(2, len(absent))):
        say("negated", key)
    if absent and rng.random() < 0.3:
        say("possible", rng.choice(absent))
    for key in p.family:
        say("family", key)
    symptoms = ph["negated_symptoms"][lang]
    i = rng.randrange(len(symptoms))
    say("negated", f"SYMPTOM:{ph['negated_symptoms']['en'][i]}", "SYMPTOM", symptoms[i])
    b.text("\n" + "，".join(rng.sample(ph["abbreviations"], 3)) + "\n")


#: Chance that a note mentions the smoking history (by smoker kind).
SMOKING_MENTION = {"heavy": 0.95, "light": 0.9, "never": 0.85}


def _smoking(b: NoteBuilder, rng: random.Random, p: Patient, lang: str) -> None:
    """The person's smoking history (``LungRisk.smoker``), annotated as a RISK_FACTOR
    (concept ``RISK:smoking``; negated for a never-smoker), in some notes. Its own random
    stream, so the rest of the note is the same as without it."""
    if p.risk is None or rng.random() >= SMOKING_MENTION[p.risk.smoker]:
        return
    kind = p.risk.smoker
    template = rng.choice(catalog.phrases()["smoking"][kind][lang])
    text = template.format(n=rng.randrange(1, 5))
    assertion = "negated" if kind == "never" else "present"
    b.mark(text, "entity", "RISK_FACTOR", assertion, "RISK:smoking")
    b.text("\n")


class Notes:
    """Writes the free-text notes of one site and their annotations."""

    def __init__(
        self, site: Site, landing: Landing, truth: TruthWriter, seed: int, wording: str = "standard"
    ) -> None:
        self.site, self.landing, self.truth, self.seed = site, landing, truth, seed
        #: ``standard`` (the default templates) or ``varied-<part>`` (``wording.py``).
        self.wording = wording

    def add_patient(self, p: Patient, staff: dict[str, Staff], dirt: Dirt) -> None:
        reg = p.registrations.get(self.site.code)
        if reg is None:
            return
        rng = random.Random(f"{self.seed}:notes:{p.index}")
        for e in p.at(self.site.code):
            kinds = []
            if e.kind == "I" or rng.random() < 0.5:
                kinds.append("progress")
            if e.kind == "I":
                kinds.append("nursing")
            if e.imaging:
                kinds.append("radiology")
            for kind in kinds:
                lang = "en" if rng.random() < 0.15 else "zh"
                b = self._note(rng, p, reg, e, kind, lang, staff[e.doctor])
                self._write(p, e, kind, lang, b, dirt)

    def _note(
        self,
        rng: random.Random,
        p: Patient,
        reg: Registration,
        e: Encounter,
        kind: str,
        lang: str,
        doctor: Staff,
    ) -> NoteBuilder:
        b = NoteBuilder()
        b.text(catalog.phrases()["note_kinds"][kind][lang] + "\n")
        when = (e.start + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
        _phi_header(b, reg, lang, when)
        if kind == "radiology" and e.imaging:
            finding = e.imaging.finding
            text = catalog.phrases()["findings"][finding][lang]
            b.text("检查所见：" if lang == "zh" else "Findings: ")
            if finding == "normal":
                b.text(text)
            else:
                b.mark(text, "entity", "FINDING", "present", finding)
            b.text("\n")
        elif self.wording != "standard":
            # Its own random stream: the varied wording draws differ from the default's.
            own = random.Random(f"{self.seed}:wording:{e.encounter_id}:{kind}")
            varied_assertions(b, own, p, e, lang, part_of(self.wording))
        else:
            _assertions(b, rng, p, e, lang)
        _smoking(b, random.Random(f"{self.seed}:smoking:{e.encounter_id}:{kind}"), p, lang)
        b.text("医师签名：" if lang == "zh" else "Signed: ")
        b.mark(doctor.name, "phi", "NAME")
        b.text("\n")
        return b

    def _write(
        self, p: Patient, e: Encounter, kind: str, lang: str, b: NoteBuilder, dirt: Dirt
    ) -> None:
        name = f"{kind}_{e.visit_no}.txt"
        note_id = f"{e.encounter_id}-{kind}"
        text = b.build()
        rel = self.landing.deliver(dirt, "notes", self.site.code, name, text.encode("utf-8"), 1)
        self.truth.add(
            "documents",
            doc_id=note_id,
            source="notes",
            institution_code=self.site.code,
            file=rel,
            person_id=p.person.person_id,
            encounter_id=e.encounter_id,
            doc_type=kind,
            title=catalog.phrases()["note_kinds"][kind][lang],
            language=lang,
        )
        for s in b.spans:
            self.truth.add(
                "note_annotations",
                note_id=note_id,
                file=rel,
                person_id=p.person.person_id,
                start=s.start,
                end=s.end,
                text=text[s.start : s.end],
                kind=s.kind,
                label=s.label,
                assertion=s.assertion,
                concept=s.concept,
            )
