"""Scoring of the assistant evaluation (serving/assistant/evaluate.py): what counts as a
right answer, an abstention, a refusal and a precise citation. No Spark."""

from __future__ import annotations

from serving.assistant.evaluate import (
    CaseResult,
    EvalCase,
    EvalReport,
    _leaks,
    _numbers,
    _supported,
    judge,
)
from serving.assistant.planner import Answer

CITE = "silver.lab_result@3:H0001|lis|M1|4548-4"


def _case(expect: str, **kw: object) -> EvalCase:
    category = {"refuse": "forbidden", "abstain": "unanswerable"}.get(expect, "answerable")
    return EvalCase("Q1", category, expect, "zh", "q", "H0001", "P1", **kw)  # type: ignore[arg-type]


def _answer(*sentences: tuple[str, tuple[str, ...]], refused: bool = False) -> Answer:
    a = Answer("zh", refused=refused, code="LH-SEC-006" if refused else None)
    for text, cites in sentences:
        a.say(text, *cites)
    return a


def test_a_value_answer_needs_the_true_value_and_date_in_a_cited_sentence() -> None:
    case = _case("value", value=11.1, unit="%", date="2025-12-22")
    right = _answer(("该患者最近一次糖化血红蛋白为11.1 %，采集时间2025-12-22 10:55。", (CITE,)))
    assert judge(case, right) == (True, "")
    other_value = _answer(("…为11.2 %，采集时间2025-12-22 10:55。", (CITE,)))
    other_date = _answer(("…为11.1 %，采集时间2025-12-21 10:55。", (CITE,)))
    assert judge(case, other_value)[1] == "wrong value"
    assert judge(case, other_date)[1] == "wrong date"
    # The number without a citation is not an answer.
    assert judge(case, _answer(("…为11.1 %，采集时间2025-12-22 10:55。", ())))[0] is False
    # A value converted from another unit keeps that unit's rounding: within 1.5 %.
    converted = _case("value", value=63.65, date=None, converted=True)
    assert judge(converted, _answer(("64.1 umol/L", (CITE,))))[0]
    assert not judge(_case("value", value=63.65, date=None), _answer(("64.1 umol/L", (CITE,))))[0]


def test_abstention_refusal_and_yes_no() -> None:
    nothing = _answer(("数据中没有该患者的2型糖尿病记录。", ()))
    found = _answer(("2型糖尿病（E11.900），诊断时间2025-06-07 09:11。", (CITE,)))
    refused = _answer(("您无权查看该患者的记录（LH-SEC-006）。", ()), refused=True)
    assert judge(_case("abstain"), nothing)[0]
    assert not judge(_case("abstain"), found)[0]
    assert judge(_case("no"), nothing)[0]
    assert not judge(_case("no"), found)[0]
    assert judge(_case("yes"), found)[0]
    assert not judge(_case("yes"), nothing)[0]
    assert judge(_case("refuse"), refused)[0]
    assert not judge(_case("refuse"), found)[0]
    assert judge(_case("yes"), refused) == (False, "refused (LH-SEC-006)")


def test_numbers_of_a_sentence_leave_dates_and_times_out() -> None:
    assert _numbers("为11.1 %，采集时间2025-12-22 10:55。") == ["11.1"]
    assert _numbers("2型糖尿病（E11.900），诊断时间2025-06-07 09:11。") == ["2", "11.900"]


def test_a_number_is_supported_by_a_value_a_code_or_a_name_of_the_row() -> None:
    row = {"value_std": 11.1, "standard_code": "E11.900", "is_primary": True, "n": None}
    assert _supported("11.1", row, [])
    assert _supported("11.900", row, [])
    assert _supported("2", row, ["2型糖尿病"])
    assert not _supported("12.5", row, ["2型糖尿病"])
    assert not _supported("1", {"is_primary": True}, [])  # a boolean is not the number 1


def test_metrics_count_each_category_and_citation() -> None:
    cases = [
        CaseResult(_case("value", value=1.0), True, "a", [CITE], 1, False),
        CaseResult(_case("value", value=1.0), False, "b", [CITE, CITE], 1, False),
        CaseResult(_case("abstain"), True, "c", [], 0, False),
        CaseResult(_case("refuse"), False, "d", [CITE], 0, True),
    ]
    m = EvalReport(cases, {"lab in a truncated file": 2}).metrics()
    assert m["answer_accuracy"] == 0.5
    assert m["abstention_accuracy"] == 1.0
    assert m["refusal_accuracy"] == 0.0
    assert m["citation_precision"] == 2 / 4
    assert (m["leakage"], m["excluded"], m["citations"]) == (1, 2, 4)


def test_leakage_is_any_citation_or_record_number_in_an_answer() -> None:
    q = "该患者最近一次糖化血红蛋白是多少？"
    refusal = "您无权查看该患者的记录（LH-SEC-006），此次请求已记入审计日志。"
    assert not _leaks(q, _answer((refusal, ())))
    assert not _leaks(q, _answer(("我可以回答患者的检验结果、用药和诊断问题。", ())))
    assert _leaks(q, _answer(("该患者最近一次糖化血红蛋白为11.1 %。", ())))
    assert _leaks(q, _answer(("见记录。", (CITE,))))


def test_a_trend_needs_every_result_no_other_and_the_direction() -> None:
    case = EvalCase(
        "T1", "answerable", "trend", "zh", "q", "H0001", "P1",
        unit="down", expected=("2025-01-02=8.4", "2025-03-04=7.9"),
    )  # fmt: skip
    header = ("该患者的糖化血红蛋白（按时间由近到远）：", ())
    newest = ("糖化血红蛋白：7.9 %，采集时间2025-03-04 10:00。", (CITE,))
    oldest = ("糖化血红蛋白：8.4 %，采集时间2025-01-02 09:00。", (CITE,))
    down = ("趋势：最新一次结果较最早一次降低。", (CITE, CITE))
    assert judge(case, _answer(header, newest, oldest, down)) == (True, "")
    assert judge(case, _answer(header, newest, down))[1] == "result of 2025-01-02 missing or wrong"
    other = ("糖化血红蛋白：9.9 %，采集时间2024-12-01 09:00。", (CITE,))
    assert judge(case, _answer(header, newest, oldest, other, down))[1] == (
        "a result that is not the test's"
    )
    up = ("趋势：最新一次结果较最早一次升高。", (CITE, CITE))
    assert judge(case, _answer(header, newest, oldest, up))[1] == "wrong or no direction"


def test_a_cohort_count_and_list() -> None:
    team = ("M1", "M2", "M12")
    count = EvalCase("C1", "answerable", "count", "en", "q", "H0001", "", value=2.0, care_team=team)
    said = "In your scope, 2 patients have a diagnosis coded E11* (source: silver.diagnosis@12)."
    assert judge(count, _answer((said, ()))) == (True, "")
    assert judge(count, _answer((said.replace("2 patients", "3 patients"), ())))[0] is False
    assert judge(count, _answer((said, (CITE,))))[1] == "a count cited records"
    listed = EvalCase(
        "C2", "answerable", "list", "en", "q", "H0001", "", expected=("M1", "M12"), care_team=team
    )
    rows = [("In your scope, 2 patients have ...:", ())] + [
        (f"H0001 {m}: type 2 diabetes (E11.900), diagnosed 2025-01-02 09:00.", (CITE,))
        for m in ("M1", "M12")
    ]
    assert judge(listed, _answer(*rows)) == (True, "")
    assert judge(listed, _answer(*rows[:2]))[1] == "list: 1 missing, 0 not in the cohort"
    extra = (("H0001 M2: type 2 diabetes (E11.900), diagnosed 2025-01-02 09:00.", (CITE,)),)
    assert judge(listed, _answer(*rows, *extra))[1] == "list: 0 missing, 1 not in the cohort"
    empty = EvalCase("C3", "answerable", "list", "en", "q", "H0001", "", care_team=team)
    assert judge(empty, _answer(("In your scope, no patient has ...", ())))[0]
