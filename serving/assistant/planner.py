"""Grounded mode: a deterministic planner that answers from the data tools, with citations.

With no LLM configured the assistant still answers: :class:`GroundedPlanner` recognizes the
question's type and entities in Chinese or English (the patient by MRN or visit number, or
the patient the page is about; tests, drugs and diagnoses through the terminology lexicon;
"latest"; a time window), calls the same guarded tools an agent would, and writes the
answer from templates. Every sentence that carries a number cites the record the number is
from; when the tools return nothing the answer says the data does not contain it and cites
nothing; a patient the user may not see is refused (the access service's refusal, audited).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.sessions import Principal
from lakehouse.terminology import ATC, ICD10, LOINC
from serving.assistant.lexicon import CJK, Concept, Lexicon
from serving.assistant.tools import CitedRow, DataTools, ToolResult

_ID = r"([A-Za-z]*\d[A-Za-z0-9_-]*)"
_MRN = re.compile(
    r"(?:\bMRN|\bpatient(?:\s+(?:id|no\.?|number))?|病历号|病案号|患者编号|患者ID|患者)"
    rf"\s*[:：#]?\s*{_ID}",
    re.IGNORECASE,
)
_VISIT = re.compile(
    r"(?:\bvisit|\bencounter)(?:\s+(?:number|no\.?|id))?\s*[:#]?\s*" + _ID + "|"
    r"(?:就诊号|门诊号|住院号|急诊号)\s*[:：]?\s*" + _ID,
    re.IGNORECASE,
)
_LATEST = re.compile(
    r"\b(?:latest|most recent|newest|last(?!\s+\d))\b|最新|最后一次|最近(?!\s*\d)", re.IGNORECASE
)
_WINDOW_EN = re.compile(r"\b(?:last|past)\s+(\d{1,4})\s+(day|week|month|year)s?\b", re.IGNORECASE)
_WINDOW_ZH = re.compile(r"(?:最近|近|过去)\s*(\d{1,4})\s*(天|日|周|星期|个月|月|年)")
_TODAY = re.compile(r"\btoday\b|今天|今日", re.IGNORECASE)
_DAYS = {
    "day": 1,
    "week": 7,
    "month": 30,
    "year": 365,
    "天": 1,
    "日": 1,
    "周": 7,
    "星期": 7,
    "个月": 30,
    "月": 30,
    "年": 365,
}
_WORDS = {
    "lab": re.compile(r"\b(?:labs?|lab results?|tests?)\b|检验|化验", re.IGNORECASE),
    "drug": re.compile(
        r"\b(?:medications?|drugs?|prescriptions?|meds)\b|用药|药物|处方|药品", re.IGNORECASE
    ),
    "diagnosis": re.compile(r"\b(?:diagnos[ie]s|conditions?)\b|诊断|疾病", re.IGNORECASE),
}


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer and the records it cites."""

    text: str
    citations: tuple[str, ...] = ()


@dataclass
class Answer:
    """An answer: sentences with citations; refused when the user may not see the patient."""

    lang: str
    sentences: list[Sentence] = field(default_factory=list)
    refused: bool = False
    code: str | None = None
    #: Who answered: "grounded" (the planner), "llm" (the agent, citations verified) or
    #: "grounded-fallback" (the planner, after the agent's answer was not usable).
    mode: str = "grounded"
    #: Why the agent's answer was not used (a catalogued LH-LLM code), on a fallback.
    fallback: str | None = None

    @property
    def text(self) -> str:
        sep = "" if self.lang == "zh" else " "
        return sep.join(s.text for s in self.sentences)

    @property
    def citations(self) -> list[str]:
        return list(dict.fromkeys(c for s in self.sentences for c in s.citations))

    def say(self, text: str, *cites: str) -> None:
        self.sentences.append(Sentence(text, tuple(cites)))


@dataclass(frozen=True)
class Plan:
    """What the planner understood of a question."""

    lang: str
    mrn: str | None
    visit: str | None
    concepts: tuple[Concept, ...]
    kinds: tuple[str, ...]
    latest: bool
    since: datetime | None


class GroundedPlanner:
    """Questions in, cited answers out, through :class:`DataTools` only."""

    def __init__(
        self,
        tools: DataTools,
        lexicon: Lexicon,
        *,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.tools, self.lexicon, self.now = tools, lexicon, now

    def plan(self, question: str, patient: str | None = None) -> Plan:
        lang = "zh" if CJK.search(question) else "en"
        mrn_m, visit_m = _MRN.search(question), _VISIT.search(question)
        mrn = patient or (mrn_m.group(1) if mrn_m else None)
        visit = next((g for g in visit_m.groups() if g), None) if visit_m and not mrn else None
        concepts = tuple(dict.fromkeys(m.concept for m in self.lexicon.find(question)))
        kinds = {c.kind for c in concepts} | {k for k, rx in _WORDS.items() if rx.search(question)}
        return Plan(
            lang,
            mrn,
            visit,
            concepts,
            tuple(k for k in ("lab", "drug", "diagnosis") if k in kinds),
            bool(_LATEST.search(question)),
            self._since(question),
        )

    def _since(self, question: str) -> datetime | None:
        now = self.now()
        m = _WINDOW_EN.search(question) or _WINDOW_ZH.search(question)
        if m:
            return now - timedelta(days=int(m.group(1)) * _DAYS[m.group(2).lower()])
        if _TODAY.search(question):
            return now.replace(hour=0, minute=0, second=0, microsecond=0)
        return None

    def ask(self, who: Principal, question: str, patient: str | None = None) -> Answer:
        plan = self.plan(question, patient)
        zh = plan.lang == "zh"
        answer = Answer(plan.lang)
        if not plan.kinds:
            answer.say(
                "我可以回答患者的检验结果、用药和诊断问题，请指明检验项目、药物或诊断。"
                if zh
                else "I can answer questions about a patient's lab results, medications and "
                "diagnoses; please name a test, drug or diagnosis."
            )
            return answer
        if plan.mrn is None and plan.visit is None:
            answer.say(
                "请指明患者（病历号或就诊号）。"
                if zh
                else "Which patient? Please give an MRN or a visit number."
            )
            return answer
        try:
            mrn = plan.mrn or self._patient_of_visit(who, plan.visit)
            if mrn is None:
                answer.say(
                    "数据中没有您可查看的该就诊号的记录。"
                    if zh
                    else "The data contains no visit with that number that you may see."
                )
                return answer
            for kind in plan.kinds:
                self._answer_kind(who, plan, kind, mrn, answer)
        except LakehouseError as exc:
            if exc.code is not ErrorCode.ACCESS_DENIED:
                raise
            return refusal(plan.lang, exc.code.id)
        return answer

    def _patient_of_visit(self, who: Principal, visit: str | None) -> str | None:
        found = self.tools.find_patient(who, visit=visit)
        return str(found.rows[0].values["patient_id"]) if found.rows else None

    def _answer_kind(self, who: Principal, plan: Plan, kind: str, mrn: str, answer: Answer) -> None:
        concepts = [c for c in plan.concepts if c.kind == kind]
        codes = [c.code for c in concepts]
        if kind == "lab":
            result = self.tools.labs(who, mrn, loinc=codes, since=plan.since)
            vocab, code_of, fmt = LOINC, "test_standard_code", _lab_sentence
        elif kind == "drug":
            result = self.tools.medications(who, mrn, atc=codes, since=plan.since)
            vocab, code_of, fmt = ATC, "drug_standard_code", _drug_sentence
        else:
            result = self.tools.diagnoses(who, mrn, icd10=codes, since=plan.since)
            vocab, code_of, fmt = ICD10, "standard_code", _dx_sentence
        groups: list[tuple[Concept | None, list[CitedRow]]] = (
            [(c, [r for r in result.rows if r.values.get(code_of) == c.code]) for c in concepts]
            if concepts
            else [(None, result.rows)]
        )
        for concept, rows in groups:
            named = [
                (r, concept or self.lexicon.concept(vocab, r.values.get(code_of)))
                for r in (rows[:1] if plan.latest else rows)
            ]
            _compose(answer, plan, kind, concept, named, fmt)


def refusal(lang: str, code: str) -> Answer:
    """The answer to a question about a patient the user may not see (already audited)."""
    refused = Answer(lang, refused=True, code=code)
    refused.say(
        f"您无权查看该患者的记录（{code}），此次请求已记入审计日志。"
        if lang == "zh"
        else f"You may not see this patient's records ({code}); the request is "
        "recorded in the audit log."
    )
    return refused


_NOUN = {
    "lab": ("检验结果", "lab results"),
    "drug": ("用药记录", "medication orders"),
    "diagnosis": ("诊断记录", "diagnoses"),
}


def _compose(
    answer: Answer,
    plan: Plan,
    kind: str,
    concept: Concept | None,
    rows: list[tuple[CitedRow, Concept | None]],
    fmt: Callable[[str, bool, Concept | None, dict[str, Any]], str],
) -> None:
    zh = plan.lang == "zh"
    what = concept.name(plan.lang) if concept else _NOUN[kind][0 if zh else 1]
    window_zh = "（所问时间范围内）" if plan.since else ""
    window_en = " in the requested time window" if plan.since else ""
    if not rows:
        answer.say(
            f"数据中没有该患者的{what}记录{window_zh}。"
            if zh
            else f"The data does not contain any {what} for this patient{window_en}."
        )
        return
    if not plan.latest:
        answer.say(
            f"该患者的{what}（按时间由近到远）：" if zh else f"The patient's {what}, newest first:"
        )
    # The same fact delivered by two systems (a diagnosis in the HIS and in a CDA document)
    # reads as one sentence citing both records.
    said: dict[str, list[str]] = {}
    for r, named in rows:
        said.setdefault(fmt(plan.lang, plan.latest, named, r.values), []).append(str(r.citation))
    for text, cites in said.items():
        answer.say(text, *cites)


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _when(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime) else str(v or "?")


def _lab_sentence(lang: str, latest: bool, concept: Concept | None, v: dict[str, Any]) -> str:
    name = concept.name(lang) if concept else (v["test_standard_name"] or v["test_source_name"])
    if v.get("value_std") is not None:
        value = f"{_num(v['value_std'])} {v['unit_std'] or ''}".strip()
    elif v.get("value_as_number") is not None:
        value = f"{_num(v['value_as_number'])} {v['unit_source'] or ''}".strip()
    else:
        value = str(v.get("value_source") or "?")
    flag = f" ({v['abnormal_flag']})" if v.get("abnormal_flag") not in (None, "", "N") else ""
    at = _when(v["collected_at"])
    if lang == "zh":
        lead = f"该患者最近一次{name}为" if latest else f"{name}："
        return f"{lead}{value}{flag}，采集时间{at}。"
    lead = f"The patient's latest {name} is " if latest else f"{name}: "
    return f"{lead}{value}{flag}, collected {at}."


def _drug_sentence(lang: str, latest: bool, concept: Concept | None, v: dict[str, Any]) -> str:
    name = concept.name(lang) if concept else (v["drug_standard_name"] or v["drug_source_name"])
    dose = " ".join(
        str(x)
        for x in (
            _num(v["dose"]) if v["dose"] is not None else None,
            v["dose_unit"],
            v["route"],
            v["frequency"],
        )
        if x
    )
    at, status = _when(v["ordered_at"]), v.get("status") or "?"
    if lang == "zh":
        lead = "该患者最近一次医嘱为" if latest else ""
        return f"{lead}{name} {dose}，开立时间{at}（{status}）。"
    lead = "The patient's latest order is " if latest else ""
    return f"{lead}{name} {dose}, ordered {at} ({status})."


def _dx_sentence(lang: str, latest: bool, concept: Concept | None, v: dict[str, Any]) -> str:
    name = concept.name(lang) if concept else (v["standard_name"] or v["source_name"])
    code, at = v.get("standard_code") or "?", _when(v["diagnosed_at"])
    if lang == "zh":
        lead = "该患者最近一次诊断为" if latest else ""
        return f"{lead}{name}（{code}），诊断时间{at}。"
    lead = "The patient's latest diagnosis is " if latest else ""
    return f"{lead}{name} ({code}), diagnosed {at}."


__all__ = ["Answer", "GroundedPlanner", "Plan", "Sentence", "ToolResult", "refusal"]
