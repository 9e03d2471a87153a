"""Grounded mode: a deterministic planner that answers from the data tools, with citations.

With no LLM configured the assistant still answers: :class:`GroundedPlanner` recognizes the
question's type and entities in Chinese or English (the patient by MRN or visit number, or
the patient the page is about; tests, drugs and diagnoses through the terminology lexicon;
"latest"; a time window), calls the same guarded tools an agent would, and writes the
answer from templates. Two further question types: a note search ("notes mentioning 胸痛
for MRN P1", "病历中提到胸痛") answered by the ``notes`` tool with span citations, and a
patient summary ("summary of patient P1", "患者P1的时间线") answered by ``timeline``; an
imaging question ("患者P1最近的CT报告", "What did the chest CT show?") answered by ``imaging``
(each report cited by its findings/impression span, each study by its row); and a
cohort count ("how many patients with E11 in my department", "糖化血红蛋白大于7的患者有多少")
answered by ``cohort_count`` (a number of the user's scope, no patient named); and a
knowledge question ("脓毒性休克的处置流程是什么？", "What does error LH-SEC-006 mean?") that
names no patient, answered from the knowledge base (:mod:`serving.assistant.knowledge`) as
the user, each passage cited by its span ``kb:<tree path>:<start>-<end>``.
Every sentence that carries a number cites the record the number is from; when the tools
return nothing the answer says the data does not contain it and cites nothing; a patient
the user may not see is refused (the access service's refusal, audited).
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
from serving.assistant.knowledge import KnowledgeTool, knowledge_query, names_documents
from serving.assistant.lexicon import CJK, Concept, Lexicon
from serving.assistant.tools import CitedRow, DataTools, LabCondition, ToolResult, modality_of

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
#: A patient named in the question ("the patient named Wang Fang", "名叫王芳的患者",
#: "姓名：王芳"): a Chinese name ends at 的, 患者/病人, punctuation or a space.
_CJK_NAME = r"([\u4e00-\u9fff·]{2,5}?)(?=的|患者|病人|[\s，,。？?；;:：]|$)"
_NAME = re.compile(
    r"\bnamed\s+(?:" + _CJK_NAME + r"|([A-Z][A-Za-z'-]*(?:\s+[A-Z][A-Za-z'-]*){0,3}))"
    r"|(?:名叫|叫做|姓名\s*[为是:：]?)\s*" + _CJK_NAME
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

#: A question about notes, and where its search words are (quoted, or after "mentioning" /
#: 提到); the search words end at "for/of/in MRN|patient|visit", punctuation or 的/吗.
_NOTES = re.compile(
    r"\bnotes?\b|\bmention(?:s|ed|ing)?\b|病历中|病历里|病程|记录中提到|(?:提到|提及|记载)",
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|「([^」]+)」')
_NOTE_QUERY = re.compile(
    r"(?:\bmention(?:s|ed|ing)?|\babout|\bcontaining|\bwith)\s+(?P<en>.+?)"
    r"(?=\s+(?:for|of|in)\s+(?:the\s+)?(?:MRN|patient|visit|encounter)\b|[?？.,;。，；]|$)"
    r"|(?:提到|提及|记载|包含)(?:了|过)?(?P<zh>[^的吗？?。，,；;]+)",
    re.IGNORECASE,
)
_COHORT = re.compile(
    r"\bhow many (?:\w+\s+)?patients\b|\bnumber of patients\b|\bcount (?:of )?patients\b"
    r"|多少(?:位|名|个)?(?:患者|病人)|(?:患者|病人)(?:有)?多少|(?:患者|病人)人?数|几(?:位|名|个)(?:患者|病人)",
    re.IGNORECASE,
)
#: A cohort *list* ("list the patients with E11", "which patients have HbA1c above 7",
#: "列出诊断为2型糖尿病的患者", "哪些患者..."); a count ("how many") takes precedence.
_COHORT_LIST = re.compile(
    r"\b(?:list|which|show(?:\s+me)?|who\s+are)\s+(?:(?:all|the|my|our)\s+)*patients\b"
    r"|\blist\s+of\s+(?:(?:all|the|my)\s+)*patients\b|\bpatients\s+(?:list|roster)\b"
    r"|列出|列举|哪些(?:位|名|个)?(?:患者|病人)|(?:患者|病人)(?:名单|列表|清单)|有哪些(?:患者|病人)",
    re.IGNORECASE,
)
_ICD10_CODE = re.compile(r"(?<![A-Za-z0-9])([A-Z]\d{2}(?:\.\d{1,2})?)(?![A-Za-z0-9])")
_COMPARE = re.compile(
    r"(>=|<=|≥|≤|>|<|大于等于|小于等于|不低于|不高于|大于|小于|高于|低于|超过|"
    r"at least|at most|greater than|less than|above|below|over|under)\s*(\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_OP = {
    "≥": ">=", "≤": "<=", "大于等于": ">=", "小于等于": "<=", "不低于": ">=", "不高于": "<=",
    "大于": ">", "小于": "<", "高于": ">", "低于": "<", "超过": ">", "at least": ">=",
    "at most": "<=", "greater than": ">", "less than": "<", "above": ">", "below": "<",
    "over": ">", "under": "<",
}  # fmt: skip
#: The ``schema.table`` a knowledge query names (its data-dictionary entry ranks first).
_TABLE = re.compile(r"(?<![\w.])[a-z]+\.[a-z0-9_]+(?![\w.])")
#: An imaging question, and the modality it names.
_IMAGING = re.compile(
    r"(?i:\b(?:imaging|radiology|radiographs?|x-?rays?|scans?|ultrasound)\b)"
    r"|(?<![A-Za-z])(?:CT|MRI)(?![A-Za-z])|影像|放射|磁共振|核磁|超声|B超|X线|胸片|平片"
)
_MODALITY = re.compile(
    r"(?<![A-Za-z])(?:CT|MRI|MR)(?![A-Za-z])|(?i:\bx-?ray|\bradiograph|\bultrasound)"
    r"|磁共振|核磁|超声|B超|X线|胸片|平片"
)
#: A question about how a value changed ("HbA1c trend", "how has ... changed over time",
#: "糖化血红蛋白的变化趋势"): every result, and whether the newest is above the earliest.
_TREND = re.compile(
    r"\btrends?\b|\bover time\b|\bchang(?:e|ed|es|ing)\b|\bprogress(?:ed|ion)?\b"
    r"|变化|趋势|走势|波动",
    re.IGNORECASE,
)
_SUMMARY = re.compile(
    r"\b(?:summary|summari[sz]e|timeline|overview)\b|摘要|概况|概要|时间线|总结", re.IGNORECASE
)


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
    #: The words a note question searches for ("" for the newest notes), else None.
    note_query: str | None = None
    #: A cohort question's ICD-10 prefixes and lab condition.
    icd10: tuple[str, ...] = ()
    lab: LabCondition | None = None
    #: A knowledge question's search words ("" when it names nothing to look for).
    kb_query: str | None = None
    #: An imaging question's modality (a key of tools.MODALITIES), None for all.
    modality: str | None = None
    #: The patient's name when the question names the patient by name only.
    name: str | None = None
    #: A question about how results changed (every result, and the direction).
    trend: bool = False


class GroundedPlanner:
    """Questions in, cited answers out, through :class:`DataTools` only."""

    def __init__(
        self,
        tools: DataTools,
        lexicon: Lexicon,
        *,
        now: Callable[[], datetime] = datetime.now,
        knowledge: KnowledgeTool | None = None,
    ) -> None:
        self.tools, self.lexicon, self.now = tools, lexicon, now
        #: The knowledge-base retrieval (None: knowledge questions are not recognized).
        self.knowledge = knowledge

    def plan(self, question: str, patient: str | None = None) -> Plan:
        lang = "zh" if CJK.search(question) else "en"
        mrn_m, visit_m = _MRN.search(question), _VISIT.search(question)
        mrn = patient or (mrn_m.group(1) if mrn_m else None)
        visit = next((g for g in visit_m.groups() if g), None) if visit_m and not mrn else None
        name_m = None if mrn or visit else _NAME.search(question)
        name = next((g for g in name_m.groups() if g), None) if name_m else None
        concepts = tuple(dict.fromkeys(m.concept for m in self.lexicon.find(question)))
        kinds = {c.kind for c in concepts} | {k for k, rx in _WORDS.items() if rx.search(question)}
        note_query = note_search_words(question) if _NOTES.search(question) else None
        icd10: tuple[str, ...] = ()
        lab = None
        modality: str | None = None
        # A knowledge question names no patient in its text (the chart the page shows
        # aside): "脓毒性休克的处置流程", "error LH-SEC-006", "silver.lab_result.value_std".
        kb_query = (
            knowledge_query(question)
            if self.knowledge is not None and not (mrn_m or visit_m or name_m)
            else None
        )
        if kb_query is not None and not names_documents(question) and (patient or kinds):
            kb_query = None  # "血糖如何" about a patient: the data tools answer
        cohort = _COHORT.search(question) or _COHORT_LIST.search(question)
        if kb_query is not None and not cohort:
            ordered: tuple[str, ...] = ("knowledge",)
            note_query = None
        elif cohort:
            ordered = ("cohort",) if _COHORT.search(question) else ("cohort_list",)
            note_query = None
            codes = [m.group(1) for m in _ICD10_CODE.finditer(question)]
            codes += [c.code for c in concepts if c.kind == "diagnosis"]
            icd10 = tuple(dict.fromkeys(codes))
            lab = _lab_condition(question, concepts)
        elif note_query is not None:
            ordered = ("note",)
        elif _IMAGING.search(question):
            ordered = ("imaging",)
            found = _MODALITY.search(question)
            modality = modality_of(found.group(0)) if found else None
        elif _SUMMARY.search(question):
            ordered = ("summary",)
        else:
            ordered = tuple(k for k in ("lab", "drug", "diagnosis") if k in kinds)
        trend = bool(_TREND.search(question)) and "lab" in ordered
        return Plan(
            lang,
            mrn,
            visit,
            concepts,
            ordered,
            bool(_LATEST.search(question)) and not trend,
            self._since(question),
            note_query,
            icd10,
            lab,
            kb_query if ordered == ("knowledge",) else None,
            modality,
            name,
            trend,
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
        if plan.kinds == ("knowledge",):
            self._answer_knowledge(who, plan, answer)
            return answer
        if plan.kinds in (("cohort",), ("cohort_list",)):
            try:
                self._answer_cohort(who, plan, answer)
            except LakehouseError as exc:
                if exc.code is not ErrorCode.ACCESS_DENIED:
                    raise
                return refusal(plan.lang, exc.code.id)
            return answer
        if plan.mrn is None and plan.visit is None and plan.name is None:
            answer.say(
                "请指明患者（病历号、就诊号或姓名）。"
                if zh
                else "Which patient? Please give an MRN, a visit number or the name."
            )
            return answer
        try:
            if plan.mrn is None and plan.visit is None:
                mrn = self._patient_of_name(who, plan, answer)
                if mrn is None:
                    return answer
            else:
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

    def _patient_of_name(self, who: Principal, plan: Plan, answer: Answer) -> str | None:
        """The one patient of ``plan.name`` that ``who`` may see; else the answer says there
        is none, or lists them (MRN and date of birth, each cited) and asks which."""
        found = self.tools.find_patient(who, name=plan.name)
        first = {str(r.values["patient_id"]): r for r in reversed(found.rows)}
        zh = plan.lang == "zh"
        if len(first) == 1:
            return next(iter(first))
        if not first:
            answer.say(
                "数据中没有您可查看的该姓名的患者。"
                if zh
                else "The data contains no patient by that name that you may see."
            )
            return None
        rows = sorted(first.values(), key=lambda r: str(r.values["patient_id"]))
        born = [r.values.get("birth_date") or "?" for r in rows]
        listed = [
            f"{r.values['patient_id']}（出生日期 {b}）"
            if zh
            else f"{r.values['patient_id']} (born {b})"
            for r, b in zip(rows, born, strict=True)
        ]
        answer.say(
            f"您可查看的同名患者有 {len(rows)} 位：{'、'.join(listed)}；请指明病历号。"
            if zh
            else f"{len(rows)} patients by that name that you may see: {', '.join(listed)}; "
            "which MRN?",
            *[str(r.citation) for r in rows],
        )
        return None

    def _patient_of_visit(self, who: Principal, visit: str | None) -> str | None:
        found = self.tools.find_patient(who, visit=visit)
        return str(found.rows[0].values["patient_id"]) if found.rows else None

    def _answer_kind(self, who: Principal, plan: Plan, kind: str, mrn: str, answer: Answer) -> None:
        if kind == "note":
            self._answer_notes(who, plan, mrn, answer)
            return
        if kind == "summary":
            self._answer_timeline(who, plan, mrn, answer)
            return
        if kind == "imaging":
            self._answer_imaging(who, plan, mrn, answer)
            return
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
            if plan.trend and kind == "lab":
                _trend_sentence(answer, plan.lang, [r for r, _ in named])

    def _answer_cohort(self, who: Principal, plan: Plan, answer: Answer) -> None:
        zh = plan.lang == "zh"
        if not plan.icd10 and plan.lab is None:
            answer.say(
                "请指明诊断（ICD-10编码，如E11）或检验条件（如糖化血红蛋白大于7）。"
                if zh
                else "Please name a diagnosis (an ICD-10 code such as E11) or a lab condition "
                "(such as HbA1c above 7)."
            )
            return
        if plan.kinds == ("cohort_list",):
            self._answer_cohort_list(who, plan, answer)
            return
        count = self.tools.cohort_count(who, icd10=plan.icd10, lab=plan.lab, since=plan.since)
        what = _cohort_what(plan, self.lexicon)
        sources = ", ".join(count.sources)
        if zh:
            window = "（所问时间范围内）" if plan.since else ""
            answer.say(
                f"在您的权限范围内，{what}的患者共{count.patients}位{window}（数据来源：{sources}）。"
            )
            return
        window = " in the requested time window" if plan.since else ""
        noun = "patient has" if count.patients == 1 else "patients have"
        answer.say(f"In your scope, {count.patients} {noun} {what}{window} (source: {sources}).")

    def _answer_cohort_list(self, who: Principal, plan: Plan, answer: Answer) -> None:
        """The cohort's patients in the user's scope: a header with the number (the tables'
        versions as its source), then per patient one sentence per qualifying record (the
        newest diagnosis and/or lab result), each citing that record's row."""
        zh = plan.lang == "zh"
        found = self.tools.cohort_list(who, icd10=plan.icd10, lab=plan.lab, since=plan.since)
        what = _cohort_what(plan, self.lexicon)
        window = (
            ("（所问时间范围内）" if zh else " in the requested time window") if plan.since else ""
        )
        sources = ", ".join(found.sources)
        if not found.patients:
            answer.say(
                f"在您的权限范围内，没有{what}的患者{window}（数据来源：{sources}）。"
                if zh
                else f"In your scope, no patient has {what}{window} (source: {sources})."
            )
            return
        shown = len(
            {(r.values["institution_code"], r.values["patient_id"]) for r in found.result.rows}
        )
        more = shown < found.patients
        if zh:
            first = f"，以下为前{shown}位" if more else ""
            answer.say(
                f"在您的权限范围内，{what}的患者共{found.patients}位{window}{first}"
                f"（数据来源：{sources}）："
            )
        else:
            noun = "patient has" if found.patients == 1 else "patients have"
            first = f"; the first {shown} are" if more else ", listed by MRN"
            answer.say(
                f"In your scope, {found.patients} {noun} {what}{window}{first} (source: {sources}):"
            )
        for r in found.result.rows:
            answer.say(_member_sentence(plan.lang, self.lexicon, r.values), str(r.citation))

    def _answer_knowledge(self, who: Principal, plan: Plan, answer: Answer) -> None:
        """The best passages of the documents the user may read, each its own sentence
        cited by its span; no patient data is read. Nothing found (or nothing readable)
        says so and names no document."""
        zh, q = plan.lang == "zh", plan.kb_query or ""
        assert self.knowledge is not None
        if not q:
            answer.say(
                "请说明要在知识库中查找的内容（流程名称、错误码或表和字段名）。"
                if zh
                else "What should I look up in the knowledge base? Name a procedure, an "
                "error code or a table and column."
            )
            return
        table = _TABLE.search(q)
        result = self.knowledge.search(who, q, table=table.group(0) if table else None)
        if not result.rows:
            answer.say(
                "知识库中没有您可查看的相关文档。"
                if zh
                else "The knowledge base has no document you may read about this."
            )
            return
        answer.say(
            "知识库中的相关内容（按相关度排序）："
            if zh
            else "From the knowledge base, best match first:"
        )
        for r in result.rows:
            answer.say(_passage_sentence(plan.lang, r.values), str(r.citation))

    def _answer_notes(self, who: Principal, plan: Plan, mrn: str, answer: Answer) -> None:
        zh, q = plan.lang == "zh", plan.note_query or ""
        result = self.tools.notes(who, mrn, q, since=plan.since)
        window = (
            ("（所问时间范围内）" if zh else " in the requested time window") if plan.since else ""
        )
        if not result.rows:
            answer.say(
                (
                    f"数据中没有该患者提到“{q}”的病历记录{window}。"
                    if q
                    else f"数据中没有该患者的病历记录{window}。"
                )
                if zh
                else (
                    f"The data contains no note of this patient mentioning “{q}”{window}."
                    if q
                    else f"The data contains no note of this patient{window}."
                )
            )
            return
        deid = any(r.values.get("deidentified") for r in result.rows)
        if zh:
            head = f"该患者病历中提到“{q}”的记录（按相关度排序）" if q else "该患者最新的病历记录"
            answer.say(head + ("，为去标识化文本：" if deid else "："))
        else:
            head = (
                f"The patient's notes mentioning “{q}”, best match first"
                if q
                else "The patient's newest notes"
            )
            answer.say(head + (" (de-identified text):" if deid else ":"))
        for r in result.rows:
            answer.say(_note_sentence(plan.lang, r.values), str(r.citation))

    def _answer_imaging(self, who: Principal, plan: Plan, mrn: str, answer: Answer) -> None:
        zh = plan.lang == "zh"
        result = self.tools.imaging(
            who, mrn, modality=plan.modality, since=plan.since, latest=plan.latest
        )
        name = _MODALITY_NAME.get(plan.modality or "", ("", ""))[0 if zh else 1]
        window = (
            ("（所问时间范围内）" if zh else " in the requested time window") if plan.since else ""
        )
        if not result.rows:
            answer.say(
                f"数据中没有该患者的{name}影像检查记录{window}。"
                if zh
                else f"The data contains no {name + ' ' if name else ''}imaging report or "
                f"study of this patient{window}."
            )
            return
        if not plan.latest:
            answer.say(
                f"该患者的{name}影像检查（由近到远）："
                if zh
                else f"The patient's {name + ' ' if name else ''}imaging, newest first:"
            )
        for r in result.rows:
            answer.say(_imaging_sentence(plan.lang, r.values), str(r.citation))

    def _answer_timeline(self, who: Principal, plan: Plan, mrn: str, answer: Answer) -> None:
        zh = plan.lang == "zh"
        result = self.tools.timeline(who, mrn, since=plan.since)
        window = (
            ("（所问时间范围内）" if zh else " in the requested time window") if plan.since else ""
        )
        if not result.rows:
            answer.say(
                f"数据中没有该患者的就诊、诊断、用药或检验记录{window}。"
                if zh
                else f"The data contains no encounter, diagnosis, medication or lab result "
                f"of this patient{window}."
            )
            return
        answer.say(
            "该患者的时间线（由近到远）：" if zh else "The patient's timeline, newest first:"
        )
        said: dict[str, list[str]] = {}
        for r in result.rows:
            v, kind = r.values, r.values.get("kind")
            if kind == "encounter":
                text = _encounter_sentence(plan.lang, v)
            elif kind == "lab":
                text = _lab_sentence(
                    plan.lang, False, self.lexicon.concept(LOINC, v.get("test_standard_code")), v
                )
            elif kind == "medication":
                text = _drug_sentence(
                    plan.lang, False, self.lexicon.concept(ATC, v.get("drug_standard_code")), v
                )
            elif kind == "imaging":
                text = _imaging_sentence(plan.lang, v)
            else:
                text = _dx_sentence(
                    plan.lang, False, self.lexicon.concept(ICD10, v.get("standard_code")), v
                )
            said.setdefault(text, []).append(str(r.citation))
        for text, cites in said.items():
            answer.say(text, *cites)


def _lab_condition(question: str, concepts: tuple[Concept, ...]) -> LabCondition | None:
    """The first lab concept of the question and the comparison that follows it."""
    labs = [c for c in concepts if c.kind == "lab"]
    m = _COMPARE.search(question)
    if not labs or m is None:
        return None
    op = _OP.get(m.group(1).lower(), m.group(1))
    return LabCondition(labs[0].code, op, float(m.group(2)))


def _trend_sentence(answer: Answer, lang: str, rows: list[CitedRow]) -> None:
    """Whether the newest result of ``rows`` (newest first, one test) is above, below or
    the same as the earliest, citing both; nothing with fewer than two results in one
    unit. No number is written (each is in its own cited sentence above)."""
    valued = [r for r in rows if isinstance(r.values.get("value_std"), int | float)]
    if len(valued) < 2 or len({r.values.get("unit_std") for r in valued}) != 1:
        return
    newest, earliest = valued[0], valued[-1]
    a, b = float(newest.values["value_std"]), float(earliest.values["value_std"])
    zh_word, en_word = ("升高", "higher than") if a > b else ("降低", "lower than")
    if a == b:
        zh_word, en_word = "持平", "the same as"
    answer.say(
        f"趋势：最新一次结果较最早一次{zh_word}。"
        if lang == "zh"
        else f"Trend: the newest result is {en_word} the earliest.",
        str(newest.citation),
        str(earliest.citation),
    )


def _cohort_what(plan: Plan, lexicon: Lexicon) -> str:
    """What a cohort is, in words: "诊断编码以E11开头且糖化血红蛋白结果> 7" / "a diagnosis coded
    E11* and a HbA1c result > 7"."""
    zh = plan.lang == "zh"
    parts = []
    if plan.icd10:
        codes = "、".join(plan.icd10) if zh else ", ".join(plan.icd10)
        parts.append(f"诊断编码以{codes}开头" if zh else f"a diagnosis coded {codes}*")
    if plan.lab is not None:
        concept = lexicon.concept(LOINC, plan.lab.loinc)
        name = concept.name(plan.lang) if concept else plan.lab.loinc
        value = f"{plan.lab.op} {_num(plan.lab.value)}"
        parts.append(f"{name}结果{value}" if zh else f"a {name} result {value}")
    return ("且" if zh else " and ").join(parts)


def _member_sentence(lang: str, lexicon: Lexicon, v: dict[str, Any]) -> str:
    """One qualifying record of a listed patient: "H0001 P1：2型糖尿病（E11.9），诊断时间…。"."""
    who = f"{v['institution_code']} {v['patient_id']}"
    if v["criterion"] == "diagnosis":
        concept = lexicon.concept(ICD10, v.get("standard_code"))
        name = concept.name(lang) if concept else (v["standard_name"] or v["source_name"])
        at = _when(v["diagnosed_at"])
        if lang == "zh":
            return f"{who}：{name}（{v['standard_code']}），诊断时间{at}。"
        return f"{who}: {name} ({v['standard_code']}), diagnosed {at}."
    concept = lexicon.concept(LOINC, v.get("test_standard_code"))
    name = concept.name(lang) if concept else (v["test_standard_name"] or v["test_source_name"])
    value = f"{_num(v['value_std'])} {v['unit_std'] or ''}".strip()
    flag = f" ({v['abnormal_flag']})" if v.get("abnormal_flag") not in (None, "", "N") else ""
    at = _when(v["collected_at"])
    if lang == "zh":
        return f"{who}：{name} {value}{flag}，采集时间{at}。"
    return f"{who}: {name} {value}{flag}, collected {at}."


def note_search_words(question: str) -> str:
    """The words a note question searches for: the quoted text, else what follows
    "mentioning"/"about" or 提到/提及 (without the patient part); "" when none."""
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(question)]
    if quoted:
        return " ".join(f'"{q.strip()}"' for q in quoted if q.strip())
    m = _NOTE_QUERY.search(question)
    if m is None:
        return ""
    words = (m["en"] or m["zh"] or "").strip()
    mrn = _MRN.search(words)
    if mrn is not None:  # "提到胸痛 患者P1": the patient is no search word
        words = words[: mrn.start()].strip()
    return words[:100]


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


def _note_sentence(lang: str, v: dict[str, Any]) -> str:
    text = " ".join(str(v.get("snippet") or "").split())
    kind, at = (
        v.get("note_type") or ("病历" if lang == "zh" else "clinical"),
        _when(v.get("recorded_at")),
    )
    if lang == "zh":
        return f"{at} {kind}记录：“{text}”。"
    return f"{kind.capitalize()} note of {at}: “{text}”."


_MODALITY_NAME = {
    "CT": ("CT", "CT"),
    "MR": ("磁共振", "MRI"),
    "XR": ("X线", "X-ray"),
    "US": ("超声", "ultrasound"),
}


def _imaging_sentence(lang: str, v: dict[str, Any]) -> str:
    """A report (its findings/impression text) or a study (modality, description, body
    part, time, accession number)."""
    at = _when(v.get("at"))
    if v.get("kind") == "report":
        text = " ".join(str(v.get("report") or "").split())
        deid = v.get("deidentified")
        if lang == "zh":
            return f"{at} 影像检查报告{'（去标识化文本）' if deid else ''}：“{text}”。"
        return f"Imaging report of {at}{' (de-identified)' if deid else ''}: “{text}”."
    modalities = "/".join(str(m) for m in v.get("modalities") or []) or "?"
    desc, part = v.get("study_description"), v.get("body_part")
    acc = v.get("accession_number")
    if lang == "zh":
        what = f"{modalities}检查" + (f"（{desc}）" if desc else "")
        more = "，".join(
            x for x in (f"部位{part}" if part else "", f"检查号{acc}" if acc else "") if x
        )
        return f"{at} {what}" + (f"，{more}" if more else "") + "。"
    what = (
        f"{modalities} study" + (f" {desc}" if desc else "") + (f" of the {part}" if part else "")
    )
    return f"{what}, {at}" + (f" (accession {acc})." if acc else ".")


def _passage_sentence(lang: str, v: dict[str, Any]) -> str:
    text = " ".join(str(v.get("passage") or "").split())
    title = v.get("title") or v.get("path")
    if lang == "zh":
        return f"《{title}》（{v.get('path')}）：“{text}”。"
    return f"{title} ({v.get('path')}): “{text}”."


def _encounter_sentence(lang: str, v: dict[str, Any]) -> str:
    at, visit = _when(v.get("start_at")), v.get("encounter_id") or "?"
    dept, cls = v.get("dept_name") or "", v.get("encounter_class") or ""
    if lang == "zh":
        return f"{at} {dept}{cls}就诊（就诊号{visit}）。".replace("  ", " ")
    where = f" at {dept}" if dept else ""
    return f"{(cls or 'Encounter').capitalize()} visit {visit}{where}, {at}."


def _dx_sentence(lang: str, latest: bool, concept: Concept | None, v: dict[str, Any]) -> str:
    name = concept.name(lang) if concept else (v["standard_name"] or v["source_name"])
    code, at = v.get("standard_code") or "?", _when(v["diagnosed_at"])
    if lang == "zh":
        lead = "该患者最近一次诊断为" if latest else ""
        return f"{lead}{name}（{code}），诊断时间{at}。"
    lead = "The patient's latest diagnosis is " if latest else ""
    return f"{lead}{name} ({code}), diagnosed {at}."


__all__ = [
    "Answer",
    "GroundedPlanner",
    "Plan",
    "Sentence",
    "ToolResult",
    "note_search_words",
    "refusal",
]
