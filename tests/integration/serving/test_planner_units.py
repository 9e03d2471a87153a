"""Without Spark: the planner's recognition in zh/en, the lexicon's longest match,
citation parsing and the time-travel guard keeping VERSION AS OF inside the policy."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import SqlGuard
from serving.assistant.citations import Citation
from serving.assistant.lexicon import Concept, Lexicon
from serving.assistant.planner import GroundedPlanner
from tests.unit.governance.demo import CATALOG, LABS, demo_policy

HBA1C = Concept("LOINC", "4548-4", "Hemoglobin A1c", "糖化血红蛋白")
HGB = Concept("LOINC", "718-7", "Hemoglobin", "血红蛋白")
GLU = Concept("LOINC", "2345-7", "Glucose", "葡萄糖")
K = Concept("LOINC", "2823-3", "Potassium", "钾")
NOW = datetime(2026, 11, 26, 12, 0)


@pytest.fixture
def planner() -> GroundedPlanner:
    lex = Lexicon()
    names = {
        HBA1C: ["糖化血红蛋白", "HbA1c", "Hemoglobin A1c"],
        HGB: ["血红蛋白", "Hemoglobin"],
        GLU: ["Glucose", "血糖", "GLU"],
        K: ["钾", "Potassium", "K"],
    }
    for c, terms in names.items():
        for n in terms:
            lex.add(n, c)
    return GroundedPlanner(cast(Any, None), lex, now=lambda: NOW)


def test_recognizes_patient_test_latest_and_window(planner: GroundedPlanner) -> None:
    zh = planner.plan("患者P0001最近一次糖化血红蛋白是多少？")
    assert (zh.lang, zh.mrn, zh.concepts, zh.kinds, zh.latest) == (
        "zh",
        "P0001",
        (HBA1C,),
        ("lab",),
        True,
    )
    en = planner.plan("What is the latest HbA1c for MRN H0001-77?")
    assert (en.lang, en.mrn, en.concepts, en.latest, en.since) == (
        "en",
        "H0001-77",
        (HBA1C,),
        True,
        None,
    )
    window = planner.plan("glucose of patient P9 over the last 30 days")
    assert window.latest is False
    assert window.since == datetime(2026, 10, 27, 12, 0)
    zh_window = planner.plan("就诊号V0002近3个月的血红蛋白")
    assert (zh_window.visit, zh_window.mrn, zh_window.concepts) == ("V0002", None, (HGB,))
    assert zh_window.since == datetime(2026, 8, 28, 12, 0)
    assert planner.plan("GLUT4 expression of MRN P1").concepts == ()
    # A one-character Chinese name is a term; a one-letter Latin one is not.
    assert planner.plan("该患者最近一次钾是多少？", patient="P7").concepts == (K,)
    assert planner.plan("Is vitamin K low for MRN P1?").concepts == ()
    page = planner.plan("该患者的用药", patient="P7")
    assert (page.mrn, page.kinds) == ("P7", ("drug",))


def test_citations_round_trip_and_reject_other_tables() -> None:
    widths = {"silver.lab_result": 3}
    c = Citation.parse("silver.lab_result@12:H0001|lis|F123|4548-4", widths)
    assert c == Citation("silver.lab_result", 12, ("H0001", "lis", "F123|4548-4"))
    assert str(c) == "silver.lab_result@12:H0001|lis|F123|4548-4"
    for bad in ("silver.lab_result@x:H1|lis|R1", "audit.events@1:a|b|c", "silver.lab_result@1:H1"):
        with pytest.raises(LakehouseError) as exc:
            Citation.parse(bad, widths)
        assert exc.value.code is ErrorCode.SRV_CITATION_INVALID


def test_guard_keeps_the_version_inside_the_row_filter(tmp_path: Path) -> None:
    guard = SqlGuard(demo_policy(tmp_path), CATALOG)
    who = Principal("dr_a", "clinician", department="A", institutions=("H1",))
    out = guard.rewrite(who, f"SELECT value FROM {LABS.name} VERSION AS OF 3 WHERE lab_id = 'L1'")
    assert "VERSION AS OF 3" in out.sql
    assert "`institution_code` IN ('H1')" in out.sql
    assert out.sql.count("VERSION AS OF") == 1
    assert out.pinned == ((LABS.name, 3),)
    two = "VERSION AS OF 3 JOIN {t} VERSION AS OF 4 ON 1 = 1"
    for bad in (two, "TIMESTAMP AS OF '2026-01-01'"):
        with pytest.raises(LakehouseError) as exc:
            guard.rewrite(who, f"SELECT 1 FROM {LABS.name} " + bad.format(t=LABS.name))
        assert exc.value.code is ErrorCode.SQL_UNPARSEABLE


def test_plain_http_only_on_loopback(tmp_path: Path) -> None:
    from lakehouse.settings import ServeSettings, Settings
    from serving.app import tls_files

    loop = Settings(data_dir=tmp_path, serve=ServeSettings(tls=False))
    assert tls_files(loop) is None
    wide = Settings(data_dir=tmp_path, serve=ServeSettings(tls=False, host="0.0.0.0"))
    with pytest.raises(LakehouseError) as exc:
        tls_files(wide)
    assert exc.value.code is ErrorCode.CONFIG_INVALID


def test_every_tool_column_is_a_column_of_its_silver_table() -> None:
    from serving.assistant import tools as t

    specs = t.ToolTables()
    for spec, columns in (
        (specs.lab_result, t._LAB_COLUMNS),
        (specs.medication_order, t._MED_COLUMNS),
        (specs.diagnosis, t._DX_COLUMNS),
        (specs.patient, t._PATIENT_COLUMNS),
    ):
        assert set(columns) <= set(spec.column_names), spec.name
        assert {"patient_id", "is_deleted"} <= set(spec.column_names)
    assert {"encounter_id", "patient_id", "start_at"} <= set(specs.encounter.column_names)
    from lakehouse.tables.silver.documents import NOTE
    from lakehouse.tables.silver.imaging import IMAGING_STUDY

    assert set(t._STUDY_COLUMNS) <= set(IMAGING_STUDY.column_names)
    assert {*t._NOTE_COLUMNS, "encounter_id", t.NOTE_TEXT} <= set(NOTE.column_names)


def test_one_fact_from_two_systems_is_one_sentence_citing_both(planner: GroundedPlanner) -> None:
    from serving.assistant.planner import Answer, _compose, _dx_sentence
    from serving.assistant.tools import CitedRow

    t2dm = Concept("ICD10", "E11.900", "Type 2 diabetes", "2型糖尿病")
    values = {"standard_code": "E11.900", "standard_name": "2型糖尿病", "source_name": None,
              "diagnosed_at": datetime(2025, 6, 7, 9, 11)}  # fmt: skip
    his = CitedRow(Citation("silver.diagnosis", 5, ("H1", "his", "D0")), values)
    emr = CitedRow(Citation("silver.diagnosis", 5, ("H1", "emr", "C0002|0")), values)
    plan = planner.plan("该患者是否诊断过2型糖尿病？", patient="P1")
    answer = Answer("zh")
    _compose(answer, plan, "diagnosis", t2dm, [(his, t2dm), (emr, t2dm)], _dx_sentence)
    one = "2型糖尿病（E11.900），诊断时间2025-06-07 09:11。"
    assert [s.text for s in answer.sentences][1:] == [one]
    assert answer.sentences[1].citations == (str(his.citation), str(emr.citation))
