"""Note search and the patient timeline: ranking, span citations, the planner's note and
summary questions and the agent's ``notes``/``timeline`` tools, over the fakes (no Spark;
the guarded read and the citation endpoint are tested in tests/integration/serving)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lakehouse.errors import LakehouseError
from serving.assistant.agent import TOOL_SCHEMAS
from serving.assistant.citations import Citation
from serving.assistant.note_search import rank_notes
from serving.assistant.planner import GroundedPlanner, note_search_words
from serving.assistant.tools import CitedRow, LabCondition, ToolResult, merge_timeline
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
    say,
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


def test_planner_cohort_needs_a_condition() -> None:
    tools = FakeTools()
    answer = GroundedPlanner(tools, lexicon(), now=lambda: NOW).ask(WHO, "how many patients?")  # type: ignore[arg-type]
    assert tools.cohorts == []
    assert "ICD-10" in answer.text


def lab_row(rid: str, patient: str, value: float) -> CitedRow:
    return lab(rid, patient, HBA1C, value, "%", NOW - timedelta(days=3))
