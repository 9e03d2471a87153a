"""LLM mode: a tool-calling agent whose answers are verified against the rows it cites.

:class:`ToolAgent` gives the model (:class:`~serving.assistant.llm.ChatModel`) seven tools
with OpenAI schemas: ``find_patient``, ``labs``, ``medications``, ``diagnoses``, ``notes``
(note search; each hit cites a span of the note, ``table@version:key:start-end``),
``imaging`` (imaging reports, cited by their findings/impression span, and studies) and
``timeline`` (the patient's encounters, diagnoses, orders, results and imaging merged by
time), and,
where the service has a knowledge base, ``knowledge_base`` (:data:`KNOWLEDGE_SCHEMA`: the
passages of the documents the user may read, each cited ``kb:<tree path>:<start>-<end>``,
:mod:`serving.assistant.knowledge`). Test, drug
and diagnosis names the model passes ("HbA1c", "糖化血红蛋白", "4548-4") are resolved through
the terminology lexicon, and every call runs through :class:`DataTools` as the signed-in
user, so the access policy and the audit apply unchanged. Rows go back to the model as
compact JSON, each tagged with a reference ``[n]`` that maps to the row's real citation
(``table@version:key``).

The model's final text must mark its facts with those references. The agent turns them
into citations and **verifies** the answer (docs/adr/0020): every reference exists; every
sentence carrying a number or a date cites at least one row, and each of its numbers and
dates is a value of a cited row (or part of the row's concept name, or in the question);
when the tools returned rows, the answer cites at least one. An answer that fails is not
shown: the grounded planner answers instead (``mode = "grounded-fallback"``, with the
``LH-LLM`` code of why), as it does when the model is unreachable or its response is not
usable. A patient the user may not see is refused exactly as the planner refuses.
Nothing of a question, a row or a model message is logged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.sessions import Principal
from lakehouse.prompts import ASSISTANT_SYSTEM_PROMPT
from lakehouse.terminology import ATC, ICD10, LOINC
from serving.assistant.checks import DATE_TIME, supported
from serving.assistant.checks import numbers as numbers_in
from serving.assistant.knowledge import KnowledgeTool
from serving.assistant.lexicon import CJK, Concept, Lexicon
from serving.assistant.llm import ChatMessage, ChatModel, ToolCall
from serving.assistant.planner import Answer, GroundedPlanner, refusal
from serving.assistant.tools import (
    ICD10_PREFIX,
    MODALITIES,
    OPS,
    CitedRow,
    DataTools,
    LabCondition,
    ToolResult,
    modality_of,
)

logger = logging.getLogger(__name__)

_PATIENT = {"type": "string", "description": "The patient's MRN (patient_id)."}
_SINCE = {
    "type": "string",
    "description": "Only records at or after this date (YYYY-MM-DD); omit for all.",
}
_LATEST = {"type": "boolean", "description": "Only the most recent record of each item."}


def _names(what: str, codes: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string"},
        "description": f"{what} in Chinese or English, or {codes}; omit for all.",
    }


#: The tools, as OpenAI function schemas.
TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "find_patient",
            "description": "Find a patient by MRN, by visit (encounter) number, or by the "
            "exact name (only the patients the user may see; several may share a name).",
            "parameters": {
                "type": "object",
                "properties": {
                    "mrn": _PATIENT,
                    "visit": {"type": "string", "description": "A visit number."},
                    "name": {"type": "string", "description": "The patient's full name."},
                },
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "labs",
            "description": "Lab results of a patient, newest first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "patient": _PATIENT,
                    "tests": _names("Test names", "LOINC codes"),
                    "since": _SINCE,
                    "latest": _LATEST,
                },
                "required": ["patient"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "medications",
            "description": "Medication orders of a patient, newest first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "patient": _PATIENT,
                    "drugs": _names("Drug names", "ATC codes"),
                    "since": _SINCE,
                    "latest": _LATEST,
                },
                "required": ["patient"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "diagnoses",
            "description": "Diagnoses of a patient, newest first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "patient": _PATIENT,
                    "diagnoses": _names("Diagnosis names", "ICD-10 codes"),
                    "since": _SINCE,
                    "latest": _LATEST,
                },
                "required": ["patient"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "notes",
            "description": "Search a patient's clinical notes (Chinese or English words; "
            "quote a phrase to require it); the best matching passages first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "patient": _PATIENT,
                    "query": {
                        "type": "string",
                        "description": 'What to look for, e.g. 胸痛 or "chest pain".',
                    },
                    "since": _SINCE,
                    "limit": {"type": "integer", "description": "At most this many notes (5)."},
                },
                "required": ["patient", "query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "imaging",
            "description": "A patient's imaging: radiology reports (their findings and "
            "impression text) and imaging studies (modality, body part, description, date), "
            "newest first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "patient": _PATIENT,
                    "modality": {
                        "type": "string",
                        "description": "Only this modality: CT, MRI, X-ray or ultrasound "
                        "(Chinese names too); omit for all.",
                    },
                    "since": _SINCE,
                    "latest": {
                        "type": "boolean",
                        "description": "Only the most recent report and study.",
                    },
                },
                "required": ["patient"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "cohort_list",
            "description": "The patients you may see with a diagnosis and/or a lab result "
            "condition, by institution and MRN: per patient the newest matching diagnosis "
            "and/or lab result (each row citable), and `patients`, how many there are in "
            "all (a count no row holds: do not state it as a cited fact).",
            "parameters": {
                "type": "object",
                "properties": {
                    "diagnoses": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "ICD-10 codes or code prefixes (E11, E11.9) or "
                        "diagnosis names in Chinese or English; any of them matches.",
                    },
                    "test": {
                        "type": "string",
                        "description": "A lab test (name in Chinese or English, or LOINC).",
                    },
                    "op": {"type": "string", "enum": [">", ">=", "<", "<="]},
                    "value": {
                        "type": "number",
                        "description": "The bound, in the test's standard unit.",
                    },
                    "since": _SINCE,
                },
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "timeline",
            "description": "A patient's summary: encounters, diagnoses, medication orders, "
            "lab results and imaging, newest first.",
            "parameters": {
                "type": "object",
                "properties": {"patient": _PATIENT, "since": _SINCE},
                "required": ["patient"],
            },
        },
    },
]

#: The knowledge-base search, offered when the service has a knowledge base.
KNOWLEDGE_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "knowledge_base",
        "description": "Search the knowledge base (hospital procedures and SOPs, the data "
        "dictionary, data-quality rules, error codes, project documentation; Chinese or "
        "English; quote a phrase or code to require it): the best passages first. Reads "
        "no patient data.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": 'What to look for, e.g. 脓毒性休克 处置 or "LH-SEC-006".',
                },
                "limit": {"type": "integer", "description": "At most this many passages (3)."},
            },
            "required": ["query"],
        },
    },
}

#: Added to the system prompt when the knowledge_base tool is offered.
_KNOWLEDGE_PROMPT = (
    " For hospital procedures, data definitions, error codes and project documentation, "
    "search the knowledge_base tool and cite the passages you use."
)

#: The fields of each table the model sees (the rest stays in the process).
_FIELDS = {
    "find_patient": ("patient_id", "sex_code", "birth_date"),
    "labs": (
        "test_standard_code",
        "value_std",
        "unit_std",
        "value_as_number",
        "unit_source",
        "value_source",
        "reference_range_source",
        "abnormal_flag",
        "collected_at",
    ),
    "medications": (
        "drug_standard_code",
        "dose",
        "dose_unit",
        "route",
        "frequency",
        "status",
        "ordered_at",
    ),
    "diagnoses": (
        "standard_code",
        "diagnosis_type",
        "is_primary",
        "clinical_status",
        "diagnosed_at",
    ),
    "notes": ("note_type", "recorded_at", "snippet", "deidentified"),
    "imaging": (
        "kind",
        "at",
        "report",
        "deidentified",
        "modalities",
        "body_part",
        "study_description",
        "accession_number",
    ),
    "knowledge_base": ("path", "title", "passage"),
    "cohort_list": (
        "institution_code",
        "patient_id",
        "criterion",
        "standard_code",
        "diagnosed_at",
        "test_standard_code",
        "value_std",
        "unit_std",
        "abnormal_flag",
        "collected_at",
    ),
    "timeline": ("kind",),
    "encounter": ("encounter_id", "encounter_class", "dept_name", "start_at", "end_at"),
}
#: The tool whose fields a timeline item of each kind shows.
_TIMELINE_TOOL = {
    "lab": "labs",
    "medication": "medications",
    "diagnosis": "diagnoses",
    "encounter": "encounter",
    "imaging": "imaging",
}
#: Per tool: vocabulary, code column, name columns (standard, source), argument of names.
_CODED = {
    "labs": (LOINC, "test_standard_code", "test_standard_name", "test_source_name", "tests"),
    "medications": (ATC, "drug_standard_code", "drug_standard_name", "drug_source_name", "drugs"),
    "diagnoses": (ICD10, "standard_code", "standard_name", "source_name", "diagnoses"),
}
_KIND = {LOINC: "lab", ATC: "drug", ICD10: "diagnosis"}
_REF = re.compile(r"[\[【]\s*(\d{1,4}(?:\s*[,，、]\s*\d{1,4})*)\s*[\]】]")
_LEADING_REFS = re.compile(r"^(?:\s*[\[【]\s*\d{1,4}(?:\s*[,，、]\s*\d{1,4})*\s*[\]】])+")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)(?=\s|$)")


@dataclass
class _Ref:
    citation: str
    values: dict[str, Any]
    names: list[str]


@dataclass
class _Run:
    """One question's conversation state: the references handed to the model."""

    who: Principal
    patient: str | None
    refs: dict[int, _Ref] = field(default_factory=dict)
    by_citation: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    def ref(self, row: CitedRow, names: list[str]) -> int:
        key = str(row.citation)
        if key not in self.by_citation:
            n = len(self.refs) + 1
            self.by_citation[key] = n
            self.refs[n] = _Ref(key, row.values, names)
        return self.by_citation[key]


class ToolAgent:
    """Questions in, verified cited answers out, through the model and :class:`DataTools`."""

    def __init__(
        self,
        tools: DataTools,
        lexicon: Lexicon,
        model: ChatModel,
        *,
        fallback: GroundedPlanner | None = None,
        max_steps: int = 6,
        now: Callable[[], datetime] = datetime.now,
        knowledge: KnowledgeTool | None = None,
    ) -> None:
        self.tools, self.lexicon, self.model = tools, lexicon, model
        self.fallback = fallback or GroundedPlanner(tools, lexicon, now=now, knowledge=knowledge)
        self.max_steps = max_steps
        #: The knowledge-base search (the fallback planner's when not given), or None.
        self.knowledge = knowledge or self.fallback.knowledge
        self.schemas = [*TOOL_SCHEMAS, *([KNOWLEDGE_SCHEMA] if self.knowledge else [])]

    # -- the loop ------------------------------------------------------------------------
    def ask(self, who: Principal, question: str, patient: str | None = None) -> Answer:
        lang = "zh" if CJK.search(question) else "en"
        run = _Run(who, patient)
        try:
            return self._converse(run, lang, question)
        except _RefusedError as refused:
            return refused.answer
        except LakehouseError as exc:
            if exc.code.id.startswith("LH-LLM-"):
                return self._fall_back(who, question, patient, exc)
            raise

    def _converse(self, run: _Run, lang: str, question: str) -> Answer:
        system = ASSISTANT_SYSTEM_PROMPT
        if self.knowledge is not None:
            system += _KNOWLEDGE_PROMPT
        if run.patient:
            system += f" The clinician is looking at the chart of patient {run.patient}."
        messages = [ChatMessage("system", system), ChatMessage("user", question)]
        while True:
            reply = self.model.chat(messages, self.schemas, tool_choice="auto")
            if not reply.tool_calls:
                return self._verified(run, lang, question, reply.content or "")
            if run.calls + len(reply.tool_calls) > self.max_steps:
                raise error(ErrorCode.LLM_STEPS_EXHAUSTED, count=self.max_steps)
            messages.append(reply)
            for call in reply.tool_calls:
                run.calls += 1
                result = self._call(run, lang, call)
                messages.append(
                    ChatMessage(
                        "tool",
                        json.dumps(result, ensure_ascii=False, default=_json),
                        tool_call_id=call.id,
                    )
                )

    def _fall_back(
        self, who: Principal, question: str, patient: str | None, exc: LakehouseError
    ) -> Answer:
        # Catalogued messages carry no patient value (lakehouse/errors.py).
        logger.warning("assistant: the model's answer was not used: %s", exc)
        answer = self.fallback.ask(who, question, patient)
        answer.mode, answer.fallback = "grounded-fallback", exc.code.id
        return answer

    # -- tools ---------------------------------------------------------------------------
    def _call(self, run: _Run, lang: str, call: ToolCall) -> dict[str, Any]:
        """Run one tool call as the user; the rows as the model sees them, or an error
        the model can act on. A refusal ends the question (:class:`_RefusedError`)."""
        args = call.arguments
        try:
            if call.name == "find_patient":
                mrn, visit = _text(args.get("mrn")), _text(args.get("visit"))
                name = _text(args.get("name"))
                if mrn is None and visit is None and name is None:
                    return {"error": "give mrn, visit or name"}
                found = self.tools.find_patient(run.who, mrn=mrn, visit=visit, name=name)
                return self._rows(run, lang, call.name, found, [])
            if call.name in ("notes", "timeline", "imaging"):
                return self._call_patient_tool(run, lang, call)
            if call.name == "knowledge_base" and self.knowledge is not None:
                return self._call_knowledge(run, lang, call)
            if call.name == "cohort_list":
                return self._call_cohort(run, lang, call)
            if call.name not in _CODED:
                known = ", ".join(t["function"]["name"] for t in self.schemas)
                return {"error": f"unknown tool; the tools are {known}"}
            vocab, _, _, _, names_arg = _CODED[call.name]
            target = _patient_and_since(run, args)
            if isinstance(target, dict):
                return target
            patient, since = target
            names = [n for n in _list(args.get(names_arg)) if n]
            concepts, unresolved = self._resolve(vocab, names)
            if names and not concepts:
                return {"rows": [], "unresolved": unresolved}
            codes = [c.code for c in concepts]
            if call.name == "labs":
                result = self.tools.labs(run.who, patient, loinc=codes, since=since)
            elif call.name == "medications":
                result = self.tools.medications(run.who, patient, atc=codes, since=since)
            else:
                result = self.tools.diagnoses(run.who, patient, icd10=codes, since=since)
        except LakehouseError as exc:
            if exc.code is ErrorCode.ACCESS_DENIED:
                raise _RefusedError(refusal(lang, exc.code.id)) from exc
            raise
        if args.get("latest") is True:
            result = _latest(result, _CODED[call.name][1])
        return self._rows(run, lang, call.name, result, unresolved)

    def _call_patient_tool(self, run: _Run, lang: str, call: ToolCall) -> dict[str, Any]:
        """``notes``, ``imaging`` and ``timeline`` (a refusal propagates to :meth:`_call`)."""
        args = call.arguments
        target = _patient_and_since(run, args)
        if isinstance(target, dict):
            return target
        patient, since = target
        if call.name == "timeline":
            result = self.tools.timeline(run.who, patient, since=since)
            return self._rows(run, lang, call.name, result, [])
        if call.name == "imaging":
            modality = _text(args.get("modality"))
            if modality is not None and modality_of(modality) is None:
                return {"error": f"modality is one of {', '.join(MODALITIES)}; omit for all"}
            result = self.tools.imaging(
                run.who, patient, modality=modality, since=since, latest=args.get("latest") is True
            )
            return self._rows(run, lang, call.name, result, [])
        query = _text(args.get("query"))
        if query is None:
            return {"error": "query (what to look for) is required"}
        limit = args.get("limit")
        n = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 5
        result = self.tools.notes(run.who, patient, query, since=since, limit=min(n, 20))
        return self._rows(run, lang, call.name, result, [])

    def _call_cohort(self, run: _Run, lang: str, call: ToolCall) -> dict[str, Any]:
        """``cohort_list``: diagnosis names resolved to ICD-10 codes (a code or prefix is
        taken as written), the test to its LOINC code; the rows and the total."""
        args = call.arguments
        icd10: list[str] = []
        unresolved: list[str] = []
        for name in [n.strip() for n in _list(args.get("diagnoses")) if n and n.strip()]:
            code = name[:1].upper() + name[1:]  # e11 -> E11; I10.x00 stays (national codes)
            if ICD10_PREFIX.match(code):
                icd10.append(code)
                continue
            concepts, missing = self._resolve(ICD10, [name])
            icd10 += [c.code for c in concepts]
            unresolved += missing
        lab = None
        test, op, value = _text(args.get("test")), args.get("op"), args.get("value")
        if test is not None:
            concepts, missing = self._resolve(LOINC, [test])
            unresolved += missing
            if not isinstance(value, int | float) or isinstance(value, bool) or op not in OPS:
                return {"error": "a test needs op (one of > >= < <=) and a numeric value"}
            if concepts:
                lab = LabCondition(concepts[0].code, str(op), float(value))
        if not icd10 and lab is None:
            if unresolved:  # nothing the terminology knows: no cohort to read
                return {"rows": [], "patients": 0, "unresolved": unresolved}
            return {"error": "give diagnoses and/or a test with op and value"}
        try:
            since = _since(args.get("since"))
        except ValueError:
            return {"error": "since must be a date YYYY-MM-DD"}
        found = self.tools.cohort_list(
            run.who, icd10=tuple(dict.fromkeys(icd10)), lab=lab, since=since
        )
        out = self._rows(run, lang, call.name, found.result, unresolved)
        out["patients"] = found.patients
        return out

    def _call_knowledge(self, run: _Run, lang: str, call: ToolCall) -> dict[str, Any]:
        """``knowledge_base``: passages of the documents the user may read (no patient
        data; audited as a knowledge-base search)."""
        assert self.knowledge is not None
        query = _text(call.arguments.get("query"))
        if query is None:
            return {"error": "query (what to look for) is required"}
        limit = call.arguments.get("limit")
        n = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 3
        result = self.knowledge.search(run.who, query, limit=min(n, 10))
        return self._rows(run, lang, call.name, result, [])

    def _rows(
        self, run: _Run, lang: str, tool: str, result: ToolResult, unresolved: list[str]
    ) -> dict[str, Any]:
        rows = []
        for r in result.rows:
            v = r.values
            names: list[str] = []
            item: dict[str, Any] = {}
            fields = _FIELDS[tool]
            if tool == "timeline":
                item["kind"] = v.get("kind")
                tool_of = _TIMELINE_TOOL.get(str(v.get("kind")), "encounter")
                names, fields = self._name(lang, tool_of, v, item), _FIELDS[tool_of]
            elif tool in _CODED:
                vocab, code_col, std_col, src_col, _ = _CODED[tool]
                concept = self.lexicon.concept(vocab, v.get(code_col))
                names = [concept.name_en, concept.name_zh] if concept else []
                item["name"] = concept.name(lang) if concept else v.get(std_col) or v.get(src_col)
            for f in fields:
                if v.get(f) is not None and v.get(f) != "":
                    item[f] = v[f]
            rows.append({"ref": f"[{run.ref(r, names)}]", **item})
        out: dict[str, Any] = {"rows": rows}
        if unresolved:
            out["unresolved"] = unresolved
        return out

    def _name(self, lang: str, tool: str, v: dict[str, Any], item: dict[str, Any]) -> list[str]:
        """Set ``item["name"]`` of a coded row; the concept's names (for the check)."""
        if tool not in _CODED:
            return []
        vocab, code_col, std_col, src_col, _ = _CODED[tool]
        concept = self.lexicon.concept(vocab, v.get(code_col))
        item["name"] = concept.name(lang) if concept else v.get(std_col) or v.get(src_col)
        return [concept.name_en, concept.name_zh] if concept else []

    def _resolve(self, vocab: str, names: Sequence[str]) -> tuple[list[Concept], list[str]]:
        """Concepts of the names (a code of the vocabulary, or a name or synonym in the
        lexicon) and the names that named none."""
        found: dict[tuple[str, str], Concept] = {}
        unresolved = []
        for name in names:
            concept = self.lexicon.concept(vocab, name.strip())
            hits = (
                [concept]
                if concept
                else [m.concept for m in self.lexicon.find(name) if m.concept.vocabulary == vocab]
            )
            if not hits:
                unresolved.append(name)
            for c in hits:
                found[(c.vocabulary, c.code)] = c
        return list(found.values()), unresolved

    # -- verification --------------------------------------------------------------------
    def _verified(self, run: _Run, lang: str, question: str, text: str) -> Answer:
        """The final text as an :class:`Answer`, if it passes the citation check
        (``LH-LLM-004`` otherwise)."""
        sentences = split_sentences(text)
        if not sentences:
            raise error(ErrorCode.LLM_BAD_RESPONSE, reason="an empty answer")
        given = question + " " + (run.patient or "")
        answer = Answer(lang, mode="llm")
        for marked in sentences:
            refs = [int(n) for m in _REF.finditer(marked) for n in re.split(r"[,，、]", m[1])]
            plain = _clean(_REF.sub(" ", marked))
            if not plain:
                continue
            missing = [n for n in refs if n not in run.refs]
            if missing:
                raise _uncited("a reference that no tool returned")
            cited = [run.refs[n] for n in dict.fromkeys(refs)]
            checked = self._checkable(plain)
            numbers = [n for n in numbers_in(checked) if not _in(n, given)]
            dates = [d for d in _dates(checked) if d not in given]
            if (numbers or dates) and not cited:
                raise _uncited("a sentence with a number cites no record")
            for n in numbers:
                if not any(supported(n, c.values, c.names) for c in cited):
                    raise _uncited("a number is not in the records it cites")
            for d in dates:
                if not any(_has_date(d, c.values) for c in cited):
                    raise _uncited("a date is not in the records it cites")
            answer.say(plain, *(c.citation for c in cited))
        if not answer.sentences:
            raise error(ErrorCode.LLM_BAD_RESPONSE, reason="an empty answer")
        if run.refs and not answer.citations:
            raise _uncited("the tools returned records and the answer cites none")
        return answer

    def _checkable(self, text: str) -> str:
        """``text`` without the concept names it mentions (the 1 of HbA1c is no value)."""
        out, last = [], 0
        for m in self.lexicon.find(text):
            out += [text[last : m.start], " "]
            last = max(last, m.end)
        return "".join(out) + text[last:]


class _RefusedError(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__("refused")
        self.answer = answer


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; references written after a sentence's full stop
    ("... 7.2 %. [1]") stay with that sentence."""
    out: list[str] = []
    for piece in _SENTENCE_END.split(text):
        lead = _LEADING_REFS.match(piece)
        if lead and out:
            out[-1] += lead.group(0)
            piece = piece[lead.end() :]
        if piece.strip():
            out.append(piece.strip())
    return out


def _uncited(reason: str) -> LakehouseError:
    return error(ErrorCode.LLM_ANSWER_UNCITED, reason=reason)


def _clean(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text).strip()
    return re.sub(r"\s+([.,;:!?。，；：！？）)])", r"\1", text)


def _in(number: str, text: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", text) is not None


def _dates(text: str) -> list[str]:
    return [m.group(0).replace("T", " ") for m in DATE_TIME.finditer(text)]


def _has_date(when: str, row: dict[str, Any]) -> bool:
    for v in row.values():
        if isinstance(v, datetime):
            shown = v.strftime("%Y-%m-%d %H:%M:%S")
        elif isinstance(v, date):
            shown = v.isoformat()
        elif isinstance(v, str):
            shown = v.replace("T", " ")
        else:
            continue
        if shown.startswith(when) or (isinstance(v, str) and when in shown):
            return True
    return False


def _latest(result: ToolResult, code_column: str) -> ToolResult:
    """The newest row of each code (rows come newest first)."""
    seen: set[Any] = set()
    rows = []
    for r in result.rows:
        code = r.values.get(code_column)
        if code not in seen:
            seen.add(code)
            rows.append(r)
    return ToolResult(result.tool, rows)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text[:128] or None


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()[:128]]
    if isinstance(value, list):
        return [str(v).strip()[:128] for v in value[:20] if isinstance(v, str | int | float)]
    return []


def _patient_and_since(
    run: _Run, args: dict[str, Any]
) -> tuple[str, datetime | None] | dict[str, Any]:
    """The patient (the call's, else the question's) and ``since`` of a patient tool call,
    or the error the model can act on."""
    patient = _text(args.get("patient")) or run.patient
    if patient is None:
        return {"error": "patient (MRN) is required"}
    try:
        return patient, _since(args.get("since"))
    except ValueError:
        return {"error": "since must be a date YYYY-MM-DD"}


def _since(value: Any) -> datetime | None:
    """The date of a ``since`` argument; None when absent (ValueError when not a date)."""
    if value is None or value == "":
        return None
    since = datetime.fromisoformat(str(value).strip())
    return since.replace(tzinfo=None)  # the tables hold the hospital's local time


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


__all__ = ["KNOWLEDGE_SCHEMA", "TOOL_SCHEMAS", "ToolAgent", "split_sentences"]
