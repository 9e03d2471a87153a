"""A DataTools-shaped fake over in-memory rows and a scripted chat model, for the agent's
logic without Spark (the real tools are tested against Delta in tests/integration/serving)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.sessions import Principal
from serving.assistant.agent import ToolAgent
from serving.assistant.citations import Citation
from serving.assistant.lexicon import Concept, Lexicon
from serving.assistant.llm import ChatMessage, ChatModel, ToolCall
from serving.assistant.note_search import rank_notes
from serving.assistant.planner import GroundedPlanner
from serving.assistant.tools import (
    MODALITIES,
    REPORT_TYPES,
    CitedRow,
    CohortCount,
    CohortList,
    DataTools,
    LabCondition,
    ToolResult,
    imaging_rows,
    merge_timeline,
    modality_of,
)

HBA1C = Concept("LOINC", "4548-4", "Hemoglobin A1c", "糖化血红蛋白")
GLU = Concept("LOINC", "2345-7", "Glucose", "葡萄糖")
METFORMIN = Concept("ATC", "A10BA02", "metformin", "二甲双胍")
NOW = datetime(2026, 11, 26, 12, 0)
WHO = Principal("dr_a", "clinician", department="A", institutions=("H1",))
LAB_TABLE = "silver.lab_result"
NOTE_TABLE = "silver.note"
STUDY_TABLE = "silver.imaging_study"


def lexicon() -> Lexicon:
    lex = Lexicon()
    for c, names in {
        HBA1C: ["糖化血红蛋白", "HbA1c", "Hemoglobin A1c"],
        GLU: ["Glucose", "血糖"],
        METFORMIN: ["metformin", "二甲双胍"],
    }.items():
        for n in names:
            lex.add(n, c)
        lex.codes[(c.vocabulary, c.code)] = c
    return lex


def lab(
    rid: str, patient: str, concept: Concept, value: float, unit: str, at: datetime
) -> CitedRow:
    values = {
        "institution_code": "H1",
        "source_system": "lis",
        "source_record_id": rid,
        "patient_id": patient,
        "test_standard_code": concept.code,
        "test_standard_name": concept.name_en,
        "test_source_name": concept.name_zh,
        "value_std": value,
        "unit_std": unit,
        "value_as_number": value,
        "unit_source": unit,
        "value_source": str(value),
        "reference_range_source": "4-6",
        "abnormal_flag": "H",
        "result_status": "final",
        "collected_at": at,
    }
    return CitedRow(Citation(LAB_TABLE, 3, ("H1", "lis", rid)), values)


def note(
    nid: str,
    patient: str,
    text: str,
    at: datetime,
    note_type: str = "progress",
    visit: str | None = None,
) -> CitedRow:
    """A silver.note-shaped row (cited without a span: the notes tool adds the span)."""
    values = {
        "institution_code": "H1",
        "source_system": "emr",
        "note_id": nid,
        "patient_id": patient,
        "encounter_id": visit,
        "note_type": note_type,
        "language": "zh",
        "recorded_at": at,
        "note_text": text,
    }
    return CitedRow(Citation(NOTE_TABLE, 7, ("H1", "emr", nid)), values)


def person(patient: str, name: str, born: date) -> CitedRow:
    """A silver.patient-shaped row."""
    values = {
        "institution_code": "H1",
        "source_system": "his",
        "patient_id": patient,
        "name": name,
        "sex_code": "F",
        "birth_date": born,
    }
    return CitedRow(Citation("silver.patient", 4, ("H1", "his", patient)), values)


def study(
    uid: str, patient: str, modality: str, at: datetime, visit: str, part: str = "CHEST"
) -> CitedRow:
    """A silver.imaging_study-shaped row."""
    values = {
        "institution_code": "H1",
        "source_system": "pacs",
        "study_instance_uid": uid,
        "patient_id": patient,
        "encounter_id": visit,
        "accession_number": f"{visit}{modality}",
        "modalities": [modality],
        "study_description": f"{modality} {part}",
        "body_part": part,
        "study_at": at,
    }
    return CitedRow(Citation(STUDY_TABLE, 2, ("H1", "pacs", uid)), values)


@dataclass
class FakeTools:
    """Rows per patient; ``denied`` patients are refused (LH-SEC-006) as the guard does."""

    labs_of: dict[str, list[CitedRow]] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    any_patient: bool = False  # every patient id has the rows of the first patient
    calls: list[tuple[str, str | None, tuple[str, ...]]] = field(default_factory=list)
    notes_of: dict[str, list[CitedRow]] = field(default_factory=dict)
    cohorts: list[tuple[tuple[str, ...], LabCondition | None]] = field(default_factory=list)
    studies_of: dict[str, list[CitedRow]] = field(default_factory=dict)
    people: list[CitedRow] = field(default_factory=list)  # silver.patient rows

    def _rows(self, patient: str) -> list[CitedRow]:
        if patient in self.denied:
            raise error(
                ErrorCode.ACCESS_DENIED,
                role="clinician",
                operation="read",
                table=LAB_TABLE,
                reason="the patient is outside your scope",
            )
        if self.any_patient and self.labs_of:
            return next(iter(self.labs_of.values()))
        return self.labs_of.get(patient, [])

    def find_patient(
        self,
        who: Principal,
        *,
        mrn: str | None = None,
        visit: str | None = None,
        name: str | None = None,
    ) -> ToolResult:
        self.calls.append(("find_patient", mrn or visit or name, ()))
        if name is None:
            return ToolResult("find_patient")
        # Only the patients the row filter lets through: here, those not ``denied``.
        seen = [p for p in self.people if p.values["name"] == name]
        return ToolResult("find_patient", [p for p in seen if p.values["patient_id"] not in
                                           self.denied])  # fmt: skip

    def labs(
        self,
        who: Principal,
        patient_id: str,
        *,
        loinc: Sequence[str] = (),
        since: datetime | None = None,
        latest: bool = False,
    ) -> ToolResult:
        self.calls.append(("labs", patient_id, tuple(loinc)))
        rows = [
            r
            for r in self._rows(patient_id)
            if (not loinc or r.values["test_standard_code"] in loinc)
            and (since is None or r.values["collected_at"] >= since)
        ]
        rows.sort(key=lambda r: r.values["collected_at"], reverse=True)
        return ToolResult("labs", rows[:1] if latest else rows)

    def notes(
        self,
        who: Principal,
        patient_id: str,
        query: str,
        *,
        since: datetime | None = None,
        limit: int = 5,
    ) -> ToolResult:
        """The real ranking (serving.assistant.note_search) over the patient's notes."""
        self.calls.append(("notes", patient_id, (query,)))
        self._rows(patient_id)
        rows = sorted(
            (
                r
                for r in self.notes_of.get(patient_id, [])
                if since is None or r.values["recorded_at"] >= since
            ),
            key=lambda r: r.values["recorded_at"],
            reverse=True,
        )
        out = []
        for hit in rank_notes([r.values["note_text"] for r in rows], query, limit=limit):
            r = rows[hit.index]
            c = r.citation
            values = {k: v for k, v in r.values.items() if k != "note_text"}
            values.update(snippet=hit.text, start=hit.start, end=hit.end, deidentified=False)
            out.append(CitedRow(Citation(c.table, c.version, c.key, (hit.start, hit.end)), values))
        return ToolResult("notes", out)

    def imaging(
        self,
        who: Principal,
        patient_id: str,
        *,
        modality: str | None = None,
        since: datetime | None = None,
        latest: bool = False,
    ) -> ToolResult:
        """The real assembly (tools.imaging_rows) over the patient's radiology notes and
        studies, as DataTools.imaging filters them."""
        self.calls.append(("imaging", patient_id, (modality,) if modality else ()))
        self._rows(patient_id)
        key = modality_of(modality)
        reports = [
            r
            for r in self.notes_of.get(patient_id, [])
            if r.values["note_type"] in REPORT_TYPES
            and (since is None or r.values["recorded_at"] >= since)
        ]
        studies = [
            r
            for r in self.studies_of.get(patient_id, [])
            if (key is None or set(r.values["modalities"]) & set(MODALITIES[key][0]))
            and (since is None or r.values["study_at"] >= since)
        ]
        rows = imaging_rows(
            ToolResult("imaging", reports), ToolResult("imaging", studies), modality=key
        ).rows
        if latest:
            rows = [next(r for r in rows if r.values["kind"] == k) for k in ("report", "study")
                    if any(r.values["kind"] == k for r in rows)]  # fmt: skip
        return ToolResult("imaging", rows)

    def timeline(
        self, who: Principal, patient_id: str, *, since: datetime | None = None, limit: int = 50
    ) -> ToolResult:
        """The patient's lab rows as a timeline (the fake has no other kinds)."""
        self.calls.append(("timeline", patient_id, ()))
        labs = self.labs(who, patient_id, since=since)
        return merge_timeline({"lab": labs}, limit=limit)

    def cohort_count(
        self,
        who: Principal,
        *,
        icd10: Sequence[str] = (),
        lab: LabCondition | None = None,
        since: datetime | None = None,
    ) -> CohortCount:
        """The number of patients of ``labs_of`` with a matching lab row (diagnosis
        prefixes count every patient: the fake holds no diagnoses); records the call."""
        self.cohorts.append((tuple(icd10), lab))
        n = 0
        for rows in self.labs_of.values():
            if lab is None or any(
                r.values["test_standard_code"] == lab.loinc
                and _meets(r.values["value_std"], lab.op, lab.value)
                for r in rows
            ):
                n += 1
        return CohortCount(n, ("silver.diagnosis@4",) if icd10 else (f"{LAB_TABLE}@3",))

    def cohort_list(
        self,
        who: Principal,
        *,
        icd10: Sequence[str] = (),
        lab: LabCondition | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> CohortList:
        """The patients of ``labs_of`` with a matching lab row, each by its newest such
        row (``criterion`` lab); only lab conditions (the fake holds no diagnoses)."""
        self.cohorts.append((tuple(icd10), lab))
        assert lab is not None, "the fake lists lab cohorts only"
        assert not icd10, "the fake holds no diagnoses"
        rows = []
        for patient in sorted(self.labs_of):
            hits = [
                r
                for r in self.labs_of[patient]
                if r.values["test_standard_code"] == lab.loinc
                and _meets(r.values["value_std"], lab.op, lab.value)
            ]
            if hits:
                newest = max(hits, key=lambda r: r.values["collected_at"])
                rows.append(CitedRow(newest.citation, {**newest.values, "criterion": "lab"}))
        shown = rows[: limit or len(rows)]
        return CohortList(len(rows), ToolResult("cohort_list", shown), (f"{LAB_TABLE}@3",))

    def key_widths(self) -> dict[str, int]:
        return {LAB_TABLE: 3, NOTE_TABLE: 3, STUDY_TABLE: 3}

    def span_tables(self) -> frozenset[str]:
        return frozenset({NOTE_TABLE})

    def cited_row(self, who: Principal, citation: Citation) -> dict[str, Any] | None:
        if citation.span is not None:
            rows = [r for rs in self.notes_of.values() for r in rs if r.citation == citation.row]
            if not rows:
                return None
            text = rows[0].values["note_text"]
            start, end = citation.span
            return {**rows[0].values, "span_text": text[start:end] if end <= len(text) else None}
        every = [*self.labs_of.values(), *self.studies_of.values()]
        rows = [r for rs in every for r in rs if r.citation == citation]
        return rows[0].values if rows else None

    def medications(self, who: Principal, patient_id: str, **_: Any) -> ToolResult:
        self.calls.append(("medications", patient_id, ()))
        self._rows(patient_id)
        return ToolResult("medications")

    def diagnoses(self, who: Principal, patient_id: str, **_: Any) -> ToolResult:
        self.calls.append(("diagnoses", patient_id, ()))
        self._rows(patient_id)
        return ToolResult("diagnoses")


def _meets(value: float, op: str, bound: float) -> bool:
    return {">": value > bound, ">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]


class Scripted:
    """A chat model that replies from a script (a message or an exception per turn) and
    keeps what it was sent."""

    def __init__(self, *replies: ChatMessage | LakehouseError) -> None:
        self.replies = list(replies)
        self.seen: list[list[ChatMessage]] = []

    def chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, Any]] = (),
        *,
        tool_choice: str | dict[str, Any] | None = None,
    ) -> ChatMessage:
        self.seen.append(list(messages))
        reply = self.replies.pop(0)
        if isinstance(reply, LakehouseError):
            raise reply
        return reply


def call(name: str, **arguments: Any) -> ChatMessage:
    return ChatMessage("assistant", None, (ToolCall(f"c_{name}", name, arguments),))


def say(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


def agent(tools: FakeTools, model: ChatModel, *, max_steps: int = 4) -> ToolAgent:
    lex = lexicon()
    real = cast(DataTools, tools)
    return ToolAgent(
        real,
        lex,
        model,
        fallback=GroundedPlanner(real, lex, now=lambda: NOW),
        max_steps=max_steps,
    )
