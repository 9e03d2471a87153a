"""Note search and the patient timeline: ranking, span citations, the planner's note and
summary questions and the agent's ``notes``/``timeline`` tools, over the fakes (no Spark;
the guarded read and the citation endpoint are tested in tests/integration/serving)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from lakehouse.errors import LakehouseError
from serving.assistant.agent import TOOL_SCHEMAS
from serving.assistant.citations import Citation
from serving.assistant.note_search import rank_notes
from serving.assistant.planner import GroundedPlanner, note_search_words
from serving.assistant.tools import (
    CitedRow,
    LabCondition,
    ToolResult,
    merge_timeline,
    report_span,
)
from tests.unit.serving.assistant_fakes import (
    GLU,
    HBA1C,
    NOW,
    WHO,
    FakeTools,
    Scripted,
    agent,
    call,
    lab,
    lexicon,
    note,
    person,
    say,
    study,
)

PAIN = "患者今日诉胸痛两小时，伴出汗。心电图未见ST段抬高。"
THIRST = "主诉：口渴多饮三月，体重下降。既往高血压病史。"
EN = "Patient reports chest pain radiating to the left arm; troponin pending."


def _tools() -> FakeTools:
    return FakeTools(
        {"P1": [lab("R1", "P1", HBA1C, 7.9, "%", NOW - timedelta(days=90))]},
        notes_of={
            "P1": [
                note("N1", "P1", THIRST, NOW - timedelta(days=30)),
                note("N2", "P1", PAIN, NOW - timedelta(days=2)),
                note("N3", "P1", EN, NOW - timedelta(days=1), "nursing"),
            ]
        },
        denied={"P9"},
    )


def test_rank_notes_finds_the_chinese_word_and_cites_its_span() -> None:
    hits = rank_notes([THIRST, PAIN, None, ""], "胸痛", limit=5)
    assert [h.index for h in hits] == [1]
    hit = hits[0]
    assert PAIN[hit.start : hit.end] == hit.text
    assert any(PAIN[s:e] == "胸痛" for s, e in hit.spans)
    assert all(hit.start <= s < e <= hit.end for s, e in hit.spans)


def test_rank_notes_english_stems_phrases_and_no_match() -> None:
    assert [h.index for h in rank_notes([THIRST, EN], "chest pains")] == [1]
    assert [h.index for h in rank_notes([THIRST, EN], '"chest pain"')] == [1]
    assert rank_notes([THIRST, EN], '"pain chest"') == []
    assert rank_notes([THIRST, EN], "肺炎") == []
    newest = rank_notes([PAIN, THIRST, EN], "", limit=2)  # no words: the first notes
    assert [h.index for h in newest] == [0, 1]
    assert newest[0].start == 0


def test_span_citations_round_trip_only_on_note_tables() -> None:
    widths, spans = {"silver.note": 3, "silver.lab_result": 3}, {"silver.note"}
    c = Citation.parse("silver.note@7:H1|emr|N2:5-9", widths, spans)
    assert (c.key, c.span, str(c)) == (("H1", "emr", "N2"), (5, 9), "silver.note@7:H1|emr|N2:5-9")
    assert c.row == Citation("silver.note", 7, ("H1", "emr", "N2"))
    assert Citation.parse("silver.note@7:H1|emr|N2", widths, spans).span is None
    lab_key = Citation.parse("silver.lab_result@3:H1|lis|R1:5-9", widths, spans)
    assert lab_key.span is None
    assert lab_key.key[-1] == "R1:5-9"
    with pytest.raises(LakehouseError) as exc:
        Citation.parse("silver.note@7:H1|emr|N2:9-5", widths, spans)
    assert exc.value.code.id == "LH-SRV-002"


def test_merge_timeline_newest_first_untimed_last_and_capped() -> None:
    def row(kind: str, rid: str, column: str, days: int | None) -> CitedRow:
        at = None if days is None else NOW - timedelta(days=days)
        return CitedRow(Citation("silver.x", 1, ("H1", "s", rid)), {column: at})

    merged = merge_timeline(
        {
            "encounter": ToolResult("t", [row("encounter", "E1", "start_at", 6)]),
            "lab": ToolResult("t", [row("lab", "L1", "collected_at", None)]),
            "diagnosis": ToolResult("t", [row("diagnosis", "D1", "diagnosed_at", 5)]),
            "medication": ToolResult("t", [row("medication", "M1", "ordered_at", 20)]),
        },
        limit=3,
    )
    assert [r.values["kind"] for r in merged.rows] == ["diagnosis", "encounter", "medication"]
    assert merged.rows[0].values["at"] == NOW - timedelta(days=5)


@pytest.mark.parametrize(
    ("question", "words"),
    [
        ("notes mentioning 胸痛 for MRN P1", "胸痛"),
        ("患者P1的病历中提到胸痛吗", "胸痛"),
        ("Do the notes mention chest pain for patient P1?", "chest pain"),
        ('notes about "chest pain" of patient P1', '"chest pain"'),
        ("summary of patient P1", ""),
    ],
)
def test_note_search_words(question: str, words: str) -> None:
    assert note_search_words(question) == words


def test_planner_answers_a_note_question_with_span_citations_that_resolve() -> None:
    tools = _tools()
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    for question in ("病历中提到胸痛的记录 患者P1", "notes mentioning chest pain for MRN P1"):
        answer = planner.ask(WHO, question)
        assert answer.citations, answer.text
        widths, spans = tools.key_widths(), tools.span_tables()
        for text in answer.citations:
            c = Citation.parse(text, widths, spans)
            assert c.span is not None
            row = tools.cited_row(WHO, c)
            assert row is not None
            assert row["patient_id"] == "P1"
            span_text = str(row["span_text"]).lower()
            assert "胸痛" in span_text or "chest pain" in span_text
    zh = planner.ask(WHO, "病历中提到胸痛的记录 患者P1")
    assert zh.lang == "zh"
    assert "胸痛" in zh.text
    assert zh.citations == ["silver.note@7:H1|emr|N2:" + "-".join(map(str, _span(tools, "胸痛")))]


def _span(tools: FakeTools, words: str) -> tuple[int, int]:
    hit = tools.notes(WHO, "P1", words).rows[0]
    assert hit.citation.span is not None
    return hit.citation.span


def test_planner_note_question_abstains_and_refuses() -> None:
    planner = GroundedPlanner(_tools(), lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    none = planner.ask(WHO, "病历中提到肺炎吗 患者P1")
    assert none.citations == []
    assert "没有" in none.text
    assert not none.refused
    en = planner.ask(WHO, "notes mentioning pneumonia for MRN P1")
    assert en.citations == []
    assert "no note" in en.text
    refused = planner.ask(WHO, "notes mentioning chest pain for MRN P9")
    assert refused.refused
    assert refused.code == "LH-SEC-006"
    assert refused.citations == []


def test_planner_summary_cites_every_item_and_keeps_lab_questions() -> None:
    tools = _tools()
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    answer = planner.ask(WHO, "summary of patient P1")
    assert answer.sentences[0].citations == ()
    assert all(s.citations for s in answer.sentences[1:])
    assert "7.9" in answer.text
    assert ("timeline", "P1", ()) in tools.calls
    zh = planner.ask(WHO, "患者P1的时间线")
    assert zh.lang == "zh"
    assert "由近到远" in zh.text
    assert zh.citations == answer.citations
    lab_q = planner.ask(WHO, "患者P1最新的糖化血红蛋白")  # unchanged: a lab question
    assert tools.calls[-1] == ("labs", "P1", (HBA1C.code,))
    assert lab_q.citations


def test_agent_notes_and_timeline_tools() -> None:
    names = {t["function"]["name"] for t in TOOL_SCHEMAS}
    assert {"notes", "timeline"} <= names
    tools = _tools()
    model = Scripted(
        call("notes", patient="P1", query="胸痛"),
        say("病程记录提到胸痛两小时 [1]。"),
    )
    answer = agent(tools, model).ask(WHO, "P1 的病历有没有提到胸痛？")
    assert answer.mode == "llm"
    (cited,) = answer.citations
    assert cited.startswith("silver.note@7:H1|emr|N2:")
    sent = model.seen[1][-1].content or ""
    assert "胸痛" in sent
    assert "note_text" not in sent
    model = Scripted(call("timeline", patient="P1"), say("The latest HbA1c is 7.9 % [1]."))
    answer = agent(tools, model).ask(WHO, "summary of P1")
    assert answer.mode == "llm"
    assert answer.citations == [str(tools.labs_of["P1"][0].citation)]
    model = Scripted(call("notes", patient="P1"), say("I need a query."))
    agent(tools, model).ask(WHO, "notes of P1")
    assert "query" in (model.seen[1][-1].content or "")
    assert GLU  # the fakes' lexicon names glucose too


def test_agent_note_refusal() -> None:
    model = Scripted(call("notes", patient="P9", query="胸痛"))
    answer = agent(_tools(), model).ask(WHO, "P9 的病历有没有提到胸痛？")
    assert answer.refused
    assert answer.code == "LH-SEC-006"
    assert answer.citations == []


@pytest.mark.parametrize(
    ("question", "icd10", "lab", "count"),
    [
        ("How many patients with E11 in my department?", ("E11",), None, 2),
        ("我科室有多少患者诊断为E11.9", ("E11.9",), None, 2),
        ("how many patients have HbA1c above 7", (), LabCondition(HBA1C.code, ">", 7.0), 1),
        ("糖化血红蛋白大于等于6.5的患者有多少", (), LabCondition(HBA1C.code, ">=", 6.5), 2),
    ],
)
def test_planner_cohort_counts(
    question: str, icd10: tuple[str, ...], lab: LabCondition | None, count: int
) -> None:
    tools = FakeTools(
        {
            "P1": [lab_row("R1", "P1", 7.9)],
            "P2": [lab_row("R2", "P2", 6.6)],
        }
    )
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    answer = planner.ask(WHO, question)
    assert tools.cohorts == [(icd10, lab)]
    assert f"{count}" in answer.text
    assert answer.citations == []  # a count: no patient's record is cited
    assert "P1" not in answer.text
    assert "P2" not in answer.text


@pytest.mark.parametrize(
    "question",
    [
        "Which patients have HbA1c above 7?",
        "list the patients with HbA1c above 7",
        "列出糖化血红蛋白大于7的患者",
        "哪些患者糖化血红蛋白高于7？",
    ],
)
def test_planner_cohort_lists_cite_each_patients_qualifying_record(question: str) -> None:
    old = lab("R0", "P1", HBA1C, 8.4, "%", NOW - timedelta(days=30))
    tools = FakeTools(
        {
            "P1": [old, lab_row("R1", "P1", 7.9)],
            "P2": [lab_row("R2", "P2", 6.6)],
            "P3": [lab_row("R3", "P3", 9.2)],
        }
    )
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    answer = planner.ask(WHO, question)
    assert tools.cohorts == [((), LabCondition(HBA1C.code, ">", 7.0))]
    header, *members = answer.sentences
    assert "2" in header.text
    assert not header.citations
    # One sentence per patient, its newest qualifying result (P1's 7.9, not the older 8.4),
    # citing exactly that row; P2 (6.6) is not in the cohort.
    assert [m.citations for m in members] == [
        (str(lab_row("R1", "P1", 7.9).citation),),
        (str(lab_row("R3", "P3", 9.2).citation),),
    ]
    assert "P1" in members[0].text
    assert "7.9" in members[0].text
    assert "8.4" not in answer.text
    assert "P3" in members[1].text
    assert "9.2" in members[1].text
    assert "P2" not in answer.text


def test_planner_cohort_list_when_nobody_matches_cites_nothing() -> None:
    tools = FakeTools({"P2": [lab_row("R2", "P2", 6.6)]})
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    answer = planner.ask(WHO, "which patients have HbA1c above 7")
    assert answer.citations == []
    assert "no patient" in answer.text
    # "how many" is a count even when the question also says "which".
    tools.cohorts.clear()
    counted = planner.ask(WHO, "how many patients, and which, have HbA1c above 7")
    assert "0 patients" in counted.text
    assert counted.citations == []


def test_planner_cohort_needs_a_condition() -> None:
    tools = FakeTools()
    answer = GroundedPlanner(tools, lexicon(), now=lambda: NOW).ask(WHO, "how many patients?")  # type: ignore[arg-type]
    assert tools.cohorts == []
    assert "ICD-10" in answer.text


def lab_row(rid: str, patient: str, value: float) -> CitedRow:
    return lab(rid, patient, HBA1C, value, "%", NOW - timedelta(days=3))


CT_REPORT = (
    "影像检查报告\n姓名：张三\n记录时间：2026-11-20 10:00\n"
    "检查所见：右上肺见一小结节影，边界清晰，建议随访。\n吸烟史10年。\n医师签名：李四\n"
)
XR_REPORT = (
    "Radiology report\nPatient: A\nFindings: Lungs are clear. No acute findings.\nSigned: B\n"
)


def _imaging_tools() -> FakeTools:
    def ago(**delta: int) -> datetime:
        return NOW - timedelta(**delta)

    return FakeTools(
        notes_of={
            "P1": [
                note("R1", "P1", CT_REPORT, ago(days=6), "radiology", visit="V1"),
                note("R2", "P1", XR_REPORT, ago(days=40), "radiology", visit="V2"),
                note("N1", "P1", THIRST, ago(days=1)),
            ]
        },
        studies_of={
            "P1": [
                study("1.2.1", "P1", "CT", ago(days=6, hours=1), "V1"),
                study("1.2.2", "P1", "CR", ago(days=40, hours=1), "V2"),
            ]
        },
        denied={"P9"},
    )


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("所见：\n a\n b\n\n印象：c\n医师：d", "a\n b\n\n印象：c"),  # header lines, blank line
        ("Findings: clear.\nImpression: normal.\nSigned: X", "clear.\nImpression: normal."),
        ("检查所见：\n结节。\n报告医师：王", "结节。"),  # runs to the next header line
        ("  no headers at all  ", "no headers at all"),
    ],
)
def test_report_span_is_the_findings_and_impression(text: str, span: str) -> None:
    start, end = report_span(text)
    assert text[start:end] == span


@pytest.mark.parametrize(
    ("question", "modality", "latest"),
    [
        ("患者P1最近的CT报告", "CT", True),
        ("患者P1的影像检查结果", None, False),
        ("What did the chest CT show for patient P1?", "CT", False),
        ("imaging reports for patient P1", None, False),
        ("患者P1的胸片", "XR", False),
        ("MRN P1 latest MRI", "MR", True),
    ],
)
def test_planner_recognizes_imaging_questions(
    question: str, modality: str | None, latest: bool
) -> None:
    plan = GroundedPlanner(_imaging_tools(), lexicon(), now=lambda: NOW).plan(question)  # type: ignore[arg-type]
    assert (plan.kinds, plan.mrn, plan.modality, plan.latest) == (
        ("imaging",),
        "P1",
        modality,
        latest,
    )


def test_planner_imaging_cites_report_spans_and_studies() -> None:
    tools = _imaging_tools()
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    answer = planner.ask(WHO, "患者P1的影像检查结果")
    assert answer.sentences[0].citations == ()
    assert "由近到远" in answer.sentences[0].text
    report, ct, xr_report, xr = answer.sentences[1:]
    finding = "右上肺见一小结节影，边界清晰，建议随访。"
    start = CT_REPORT.index(finding)
    assert report.citations == (f"silver.note@7:H1|emr|R1:{start}-{start + len(finding)}",)
    assert finding in report.text
    assert "吸烟" not in report.text
    assert "张三" not in report.text
    assert ct.citations == ("silver.imaging_study@2:H1|pacs|1.2.1",)
    assert "CT检查（CT CHEST）" in ct.text
    assert "检查号V1CT" in ct.text
    assert "Lungs are clear" in xr_report.text
    assert xr.citations == ("silver.imaging_study@2:H1|pacs|1.2.2",)
    widths, spans = tools.key_widths(), tools.span_tables()
    for text in answer.citations:  # every citation resolves to the patient's record
        row = tools.cited_row(WHO, Citation.parse(text, widths, spans))
        assert row is not None
        assert row["patient_id"] == "P1"
    assert (
        tools.cited_row(WHO, Citation.parse(report.citations[0], widths, spans))[  # type: ignore[index]
            "span_text"
        ]
        == finding
    )
    # The chest CT: the CT study and its visit's report only; "latest": one of each.
    en = planner.ask(WHO, "What did the latest chest CT show for patient P1?")
    assert en.citations == [report.citations[0], ct.citations[0]]
    assert en.text.startswith("Imaging report of 2026-11-20 12:00: “右上肺")
    assert tools.calls[-1] == ("imaging", "P1", ("CT",))


def test_planner_imaging_abstains_refuses_and_keeps_other_questions() -> None:
    tools = _imaging_tools()
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    none = planner.ask(WHO, "患者P1的超声检查")
    assert none.citations == []
    assert "没有该患者的超声影像检查记录" in none.text
    window = planner.ask(WHO, "imaging of patient P1 in the last 3 days")
    assert window.citations == []
    assert "no imaging report or study" in window.text
    refused = planner.ask(WHO, "患者P9最近的CT报告")
    assert refused.refused
    assert refused.code == "LH-SEC-006"
    assert refused.citations == []
    # A note search naming CT stays a note search.
    assert planner.plan("notes mentioning CT for MRN P1").kinds == ("note",)


def test_timeline_and_agent_imaging_tool() -> None:
    tools = _imaging_tools()
    merged = merge_timeline(
        {"imaging": tools.imaging(WHO, "P1"), "lab": ToolResult("labs")}, limit=10
    )
    assert [r.values["kind"] for r in merged.rows] == ["imaging"] * 4
    assert merged.rows[0].values["at"] == NOW - timedelta(days=6)
    names = {t["function"]["name"] for t in TOOL_SCHEMAS}
    assert "imaging" in names
    model = Scripted(
        call("imaging", patient="P1", modality="CT", latest=True),
        say("2026-11-20 的CT报告：右上肺见一小结节影，建议随访 [1]。"),
    )
    answer = agent(tools, model).ask(WHO, "P1 最近的CT报告？")
    assert answer.mode == "llm"
    assert answer.citations[0].startswith("silver.note@7:H1|emr|R1:")
    sent = model.seen[1][-1].content or ""
    assert "右上肺" in sent
    assert "张三" not in sent  # the rest of the note stays in the process
    model = Scripted(call("imaging", patient="P1", modality="PET"), say("No PET data."))
    agent(tools, model).ask(WHO, "PET of P1")
    assert "modality is one of" in (model.seen[1][-1].content or "")
    refused = agent(tools, Scripted(call("imaging", patient="P9"))).ask(WHO, "P9 的影像")
    assert refused.refused
    assert refused.citations == []


def test_planner_finds_the_patient_by_name_within_what_the_user_may_see() -> None:
    tools = _tools()
    tools.people = [
        person("P1", "王芳", date(1970, 1, 1)),
        person("P2", "Li Na", date(1980, 5, 6)),
        person("P3", "Li Na", date(1991, 2, 3)),
        person("P9", "王芳", date(1960, 1, 1)),  # outside the user's scope (the row filter)
    ]
    planner = GroundedPlanner(tools, lexicon(), now=lambda: NOW)  # type: ignore[arg-type]
    one = planner.ask(WHO, "名叫王芳的患者最新的糖化血红蛋白")
    assert ("find_patient", "王芳", ()) in tools.calls
    assert "7.9" in one.text  # P1's HbA1c: P9 of the same name is not among the candidates
    assert ("labs", "P1", ("4548-4",)) in tools.calls
    two = planner.ask(WHO, "latest HbA1c of the patient named Li Na")
    assert "P2 (born 1980-05-06)" in two.text
    assert "P3 (born 1991-02-03)" in two.text
    assert two.citations == ["silver.patient@4:H1|his|P2", "silver.patient@4:H1|his|P3"]
    assert not any(c[0] == "labs" and c[1] in ("P2", "P3") for c in tools.calls)
    none = planner.ask(WHO, "姓名：张三 的血糖")
    assert "没有" in none.text
    assert none.citations == []
    assert planner.plan("latest HbA1c for MRN P1").name is None


def test_agent_cohort_list_tool() -> None:
    assert "cohort_list" in {t["function"]["name"] for t in TOOL_SCHEMAS}
    tools = FakeTools({"P1": [lab_row("R1", "P1", 7.9)], "P2": [lab_row("R2", "P2", 6.6)]})
    model = Scripted(
        call("cohort_list", test="糖化血红蛋白", op=">", value=7),
        say("P1 的糖化血红蛋白为 7.9 % [1]。"),
    )
    answer = agent(tools, model).ask(WHO, "哪些患者糖化血红蛋白大于7？")
    assert answer.mode == "llm"
    assert tools.cohorts == [((), LabCondition(HBA1C.code, ">", 7.0))]
    assert answer.citations == [str(lab_row("R1", "P1", 7.9).citation)]
    sent = json.loads(model.seen[1][-1].content or "{}")
    assert sent["patients"] == 1
    assert [r["patient_id"] for r in sent["rows"]] == ["P1"]
    # A condition without its bound, an unknown diagnosis name: errors the model can act on.
    model = Scripted(call("cohort_list", test="HbA1c"), say("Which bound?"))
    agent(tools, model).ask(WHO, "patients with HbA1c")
    assert "op" in (model.seen[1][-1].content or "")
    model = Scripted(call("cohort_list", diagnoses=["no such disease"]), say("None."))
    agent(tools, model).ask(WHO, "patients with no such disease")
    assert json.loads(model.seen[1][-1].content or "{}")["unresolved"] == ["no such disease"]


@pytest.mark.parametrize(
    ("question", "word"),
    [
        ("患者P1的糖化血红蛋白变化趋势如何？", "降低"),
        ("How has the HbA1c of patient P1 changed over time?", "lower than"),
        ("患者P1最近的糖化血红蛋白走势", "降低"),  # 最近 with a trend: every result, not one
    ],
)
def test_planner_trend_lists_every_result_and_the_direction(question: str, word: str) -> None:
    older = lab("R0", "P1", HBA1C, 8.4, "%", NOW - timedelta(days=90))
    tools = FakeTools({"P1": [lab_row("R1", "P1", 7.9), older]})
    answer = GroundedPlanner(tools, lexicon(), now=lambda: NOW).ask(WHO, question)  # type: ignore[arg-type]
    texts = [s.text for s in answer.sentences]
    assert any("7.9" in t for t in texts)
    assert any("8.4" in t for t in texts)
    trend = answer.sentences[-1]
    assert word in trend.text
    assert trend.citations == (str(lab_row("R1", "P1", 7.9).citation), str(older.citation))
    assert not any(c.isdigit() for c in trend.text)  # its numbers are cited above


def test_cohort_codes_take_icd10_prefixes_and_the_national_extension() -> None:
    from serving.assistant.tools import ICD10_PREFIX

    for code in ("E11", "E11.9", "E11.900", "I10.x00", "E1"):
        assert ICD10_PREFIX.match(code), code
    for bad in ("e11", "E11.9%", "E11' OR 1=1", "11", ""):
        assert not ICD10_PREFIX.match(bad), bad
