"""The assistant's knowledge-base retrieval: routing, bilingual passages cited by their
span (``kb:<tree path>:<start>-<end>``), folder permissions, the audit, the citation check
and the agent's ``knowledge_base`` tool, over a small tree and the fakes (no Spark; the
citation endpoint over the running service is in tests/integration/serving/test_kb_http.py).

The project section is the real error-code catalog and data dictionary (copied into a
temporary checkout: indexing them takes about two seconds, once per module)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import pytest

from lakehouse.errors import LakehouseError
from lakehouse.governance.audit import MemoryAuditLog
from lakehouse.governance.sessions import Principal
from lakehouse.knowledge import KnowledgeBase
from serving.assistant.agent import KNOWLEDGE_SCHEMA, ToolAgent
from serving.assistant.citations import Citation
from serving.assistant.knowledge import KnowledgeTool, knowledge_query
from serving.assistant.planner import Answer, GroundedPlanner
from serving.assistant.tools import DataTools
from tests.unit.serving.assistant_fakes import (
    HBA1C,
    NOW,
    FakeTools,
    Scripted,
    call,
    lab,
    lexicon,
    say,
)

REPO = Path(__file__).resolve().parents[3]
SEPSIS_TITLE = "脓毒性休克处置流程"
SEPSIS = (
    f"# {SEPSIS_TITLE}\n\n"
    "一、识别：疑似感染且需血管活性药物维持平均动脉压≥65 mmHg，血乳酸>2 mmol/L。\n\n"
    "二、处置：1小时内留取血培养后给予广谱抗生素；30 mL/kg晶体液复苏；"
    "复苏后仍低血压者首选去甲肾上腺素。\n"
)
HYGIENE = (
    "# Hand hygiene\n\n"
    "Staff perform hand hygiene before and after every patient contact, using alcohol rub "
    "for 20 seconds or soap and water when hands are visibly soiled.\n"
)
FILES = {
    "sops/_access.yaml": "roles: [clinician, nurse]\n",
    "sops/hand-hygiene.md": HYGIENE,
    "sops/icu/_access.yaml": "departments: [ICU]\n",
    "sops/icu/septic-shock.md": SEPSIS,
}
ICU_DOC = Principal("dr_icu", "clinician", department="ICU", institutions=("H1",))
WARD_A = Principal("dr_a", "clinician", department="A", institutions=("H1",))
ANALYST = Principal("ana", "analyst", department="A", institutions=("H1",))


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    base = tmp_path_factory.mktemp("kb-assistant")
    (base / "home" / "docs").mkdir(parents=True)
    for name in ("error-codes.md", "data-dictionary.md"):
        shutil.copyfile(REPO / "docs" / name, base / "home" / "docs" / name)
    root = base / "knowledge"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    knowledge = KnowledgeBase(root, base / "index" / "kb.db", home=base / "home")
    knowledge.sync()
    return knowledge


@pytest.fixture
def audit() -> MemoryAuditLog:
    return MemoryAuditLog()


@pytest.fixture
def tool(kb: KnowledgeBase, audit: MemoryAuditLog) -> KnowledgeTool:
    return KnowledgeTool.of(kb, audit)


def _planner(tool: KnowledgeTool, tools: FakeTools | None = None) -> GroundedPlanner:
    data = tools or FakeTools({"P1": [lab("R1", "P1", HBA1C, 7.9, "%", NOW)]})
    return GroundedPlanner(cast(DataTools, data), lexicon(), now=lambda: NOW, knowledge=tool)


def _kb_sentences(answer: Answer) -> list[tuple[str, Citation]]:
    return [
        (s.text, Citation.parse(c, {}))
        for s in answer.sentences
        for c in s.citations
        if c.startswith("kb:")
    ]


def test_chinese_sop_question_is_answered_with_a_verified_span(
    tool: KnowledgeTool, audit: MemoryAuditLog
) -> None:
    question = "脓毒性休克的处置流程是什么？"
    answer = _planner(tool).ask(ICU_DOC, question)
    assert answer.lang == "zh"
    assert not answer.refused
    cited = _kb_sentences(answer)
    assert cited, answer.text
    text, citation = cited[0]
    assert citation.kb_path == "sops/icu/septic-shock.md"
    assert str(Citation.parse(str(citation), {})) == str(citation)  # round trip
    found = tool.cited(ICU_DOC, citation)
    assert found is not None
    assert found["title"] == SEPSIS_TITLE
    assert "脓毒性休克" in found["span_text"] or "处置" in found["span_text"]
    assert " ".join(found["span_text"].split()) in text  # the sentence quotes the span
    # every sentence that quotes a passage cites it
    assert all(s.citations for s in answer.sentences[1:])
    # audited as a knowledge-base search, without the question's text
    searches = [r for r in audit.rows if r["target"] == "kb:search"]
    assert len(searches) == 1
    assert searches[0]["purpose"] == "knowledge"
    assert "query_hmac=" in str(searches[0]["detail"])
    assert "脓毒" not in str(searches[0]["detail"])
    assert searches[0]["row_count"] >= 1


def test_english_questions_find_english_documents(tool: KnowledgeTool) -> None:
    planner = _planner(tool)
    for question, path, needle in (
        ("What does error LH-SEC-006 mean?", "project/reference/error-codes.md", "LH-SEC-006"),
        (
            "What is the definition of silver.lab_result.value_std?",
            "project/data-dictionary/silver.lab_result",
            "value_std",
        ),
        ("What is the hand hygiene procedure?", "sops/hand-hygiene.md", "hand hygiene"),
    ):
        answer = planner.ask(ICU_DOC, question)
        assert answer.lang == "en"
        cited = _kb_sentences(answer)
        assert cited, (question, answer.text)
        text, citation = cited[0]
        assert citation.kb_path == path, question
        found = tool.cited(ICU_DOC, citation)
        assert found is not None, question
        assert needle.lower() in found["span_text"].lower(), question
        assert " ".join(found["span_text"].split()) in text


def test_a_closed_folder_gives_no_snippet_and_no_title(tool: KnowledgeTool) -> None:
    planner = _planner(tool)
    for who in (WARD_A, ANALYST):
        answer = planner.ask(who, "脓毒性休克的处置流程是什么？")
        assert all(not c.kb_path.startswith("sops/icu/") for _, c in _kb_sentences(answer))
        assert SEPSIS_TITLE not in answer.text
        assert "septic-shock" not in answer.text
        assert "去甲肾上腺素" not in answer.text
    # the analyst's role may read no SOP at all: nothing, and nothing named
    answer = planner.ask(ANALYST, "What is the hand hygiene procedure?")
    assert all(not c.kb_path.startswith("sops/") for _, c in _kb_sentences(answer))
    assert "Hand hygiene" not in answer.text
    assert "alcohol rub" not in answer.text
    # a citation of the closed folder does not resolve for them (as for a missing one)
    icu = _kb_sentences(planner.ask(ICU_DOC, "脓毒性休克的处置流程是什么？"))[0][1]
    assert tool.cited(WARD_A, icu) is None
    assert tool.cited(ICU_DOC, icu) is not None


def test_patient_questions_still_go_to_the_data_tools(
    tool: KnowledgeTool, audit: MemoryAuditLog
) -> None:
    data = FakeTools({"P1": [lab("R1", "P1", HBA1C, 7.9, "%", NOW)]})
    planner = _planner(tool, data)
    for question, patient in (
        ("患者P1最新的糖化血红蛋白是多少？", None),
        ("What is the latest HbA1c of MRN P1?", None),
        ("最近糖化血红蛋白如何？", "P1"),  # 如何 about the chart shown: a data question
    ):
        answer = planner.ask(ICU_DOC, question, patient)
        assert answer.citations
        assert all(c.startswith("silver.lab_result@") for c in answer.citations)
    assert data.calls
    assert not [r for r in audit.rows if str(r["target"]).startswith("kb:")]
    assert knowledge_query("患者P1的血糖") is None


def test_the_citation_check_rejects_forged_and_out_of_range_spans(tool: KnowledgeTool) -> None:
    path = "sops/hand-hygiene.md"
    assert tool.cited(ICU_DOC, Citation.kb(path, 0, len(HYGIENE))) is not None
    assert tool.cited(ICU_DOC, Citation.kb(path, 10, len(HYGIENE) + 1)) is None  # past the end
    assert tool.cited(ICU_DOC, Citation.kb("sops/forged.md", 0, 5)) is None  # no such document
    row = Citation("silver.lab_result", 3, ("H1", "lis", "R1"))
    assert tool.cited(ICU_DOC, row) is None  # not a knowledge-base citation
    for bad in (
        "kb:../secrets/session.key:0-5",
        "kb:/etc/passwd:0-5",
        "kb:sops/_access.yaml:0-5",
        "kb:sops/hand-hygiene.md:7-7",
        "kb:sops/hand-hygiene.md:9-3",
        "kb:sops/hand-hygiene.md",
        "kb::0-5",
    ):
        with pytest.raises(LakehouseError) as exc:
            Citation.parse(bad, {})
        assert exc.value.code.id == "LH-SRV-002", bad


def test_the_agent_cites_knowledge_passages_and_refuses_forged_references(
    tool: KnowledgeTool,
) -> None:
    data = cast(DataTools, FakeTools())

    def agent(*replies: object) -> tuple[ToolAgent, Scripted]:
        model = Scripted(*replies)  # type: ignore[arg-type]
        fallback = GroundedPlanner(data, lexicon(), now=lambda: NOW, knowledge=tool)
        return ToolAgent(data, lexicon(), model, fallback=fallback, max_steps=3), model

    bot, model = agent(
        call("knowledge_base", query="hand hygiene"),
        say("Staff clean their hands with alcohol rub for 20 seconds [1]."),
    )
    assert KNOWLEDGE_SCHEMA in bot.schemas
    answer = bot.ask(ICU_DOC, "How long is hand rub applied?")
    assert "knowledge_base" in str(model.seen[0][0].content)
    assert answer.mode == "llm"
    (citation,) = answer.citations
    assert citation.startswith("kb:sops/hand-hygiene.md:")
    found = tool.cited(ICU_DOC, Citation.parse(citation, {}))
    assert found is not None
    assert "20 seconds" in found["span_text"]

    forged = agent(
        call("knowledge_base", query="hand hygiene"),
        say("Hands are rubbed for 45 seconds [1]."),  # 45 is in no passage
    )[0].ask(ICU_DOC, "What is the hand hygiene procedure?")
    assert forged.mode == "grounded-fallback"
    assert forged.fallback == "LH-LLM-004"
    assert any(c.startswith("kb:sops/hand-hygiene.md:") for c in forged.citations)
