"""De-identification: recognizer tables and Hypothesis invariants."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.nlp import identifiers
from models.nlp.deid import Deidentifier, detect, leaks

KEY = b"test-key"


def _id(first17: str) -> str:
    return first17 + identifiers.check_digit(first17)


VALID_ID = _id("11010519491231002")  # the GB 11643 example number
assert VALID_ID == "11010519491231002X"


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        (
            "zh",
            "姓名：张伟  身份证号：11010519491231002X",
            [("NAME", "张伟"), ("ID_CARD", VALID_ID)],
        ),
        ("zh", "医师签名：欧阳娜娜\n", [("NAME", "欧阳娜娜")]),
        ("zh", "患者李明因胸痛入院。", [("NAME", "李明")]),
        ("zh", "患者有高血压病史。", []),
        ("zh", "联系电话：13812345678", [("PHONE", "13812345678")]),
        (
            "zh",
            "电话+86 13812345678，座机0791-86123456",
            [("PHONE", "+86 13812345678"), ("PHONE", "0791-86123456")],
        ),
        (
            "zh",
            "住址：江西省南昌市东湖区滨海大道231号6栋1907室",
            [("ADDRESS", "江西省南昌市东湖区滨海大道231号6栋1907室")],
        ),
        ("zh", "住址：北京市朝阳区华强北路209号", [("ADDRESS", "北京市朝阳区华强北路209号")]),
        ("zh", "记录时间：2026-02-24 21:27", [("DATE", "2026-02-24 21:27")]),
        ("zh", "于2025年3月8日入院", [("DATE", "2025年3月8日")]),
        ("zh", "住院号：ZY003167601", [("MRN", "ZY003167601")]),
        ("zh", "编号123456789012345678", []),  # 18 digits, no real birth date
        ("zh", "BP 135/85mmHg，HR 78次/分", []),
        ("zh", "今日查房，王芳诉头痛。", [("NAME", "王芳")]),
        ("zh", "方案：继续治疗，余同前。", []),
        ("zh", "诊断：高血压，糖尿病。", []),
        ("zh", "手机138-1234-5678", [("PHONE", "138-1234-5678")]),
        ("en", "Patient: ZHANG Wei, male", [("NAME", "ZHANG Wei")]),
        (
            "en",
            "Seen 03/05/2024, again March 5, 2024.",
            [("DATE", "03/05/2024"), ("DATE", "March 5, 2024")],
        ),
        (
            "en",
            "Patient: Michael Walker, ID card 11010519491231002X",
            [("NAME", "Michael Walker"), ("ID_CARD", VALID_ID)],
        ),
        (
            "en",
            "Signed: Anna Taylor\nemail anna.t@example.com",
            [("NAME", "Anna Taylor"), ("EMAIL", "anna.t@example.com")],
        ),
    ],
)
def test_detect(lang: str, text: str, expected: list[tuple[str, str]]) -> None:
    assert [(r.entity_type, text[r.start : r.end]) for r in detect(text, lang)] == expected


def test_id_card_checksum() -> None:
    assert identifiers.is_valid_id(VALID_ID)
    assert not identifiers.is_valid_id(VALID_ID[:17] + "1")
    assert identifiers.looks_like_id(VALID_ID[:17] + "1")  # mistyped: still PHI
    assert not identifiers.looks_like_id("110105194913310021")  # month 13


def test_surrogates_keep_format_and_are_consistent() -> None:
    text = (
        "姓名：张伟  身份证号：11010519491231002X\n"
        "联系电话：13812345678\n记录时间：2026-02-24 21:27\n"
    )
    a, b = Deidentifier(KEY), Deidentifier(KEY)
    ra, rb = a.deidentify(text, "zh", "P1"), b.deidentify(text, "zh", "P1")
    assert ra.text == rb.text  # same key, same surrogates
    new = {r.entity_type: ra.text[r.new_start : r.new_end] for r in ra.replacements}
    assert len(new["NAME"]) == 2
    assert new["NAME"] != "张伟"
    assert len(new["ID_CARD"]) == 18
    assert new["ID_CARD"][17] == identifiers.check_digit(new["ID_CARD"][:17])
    assert not identifiers.is_valid_id(new["ID_CARD"])
    assert re.fullmatch(r"10\d{9}", new["PHONE"])
    shift = identifiers.birth_date(new["ID_CARD"]) - identifiers.birth_date(VALID_ID)  # type: ignore[operator]
    assert new["DATE"] != "2026-02-24 21:27"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 21:27", new["DATE"])
    import datetime as dt

    moved = dt.date.fromisoformat(new["DATE"][:10]) - dt.date(2026, 2, 24)
    assert moved == shift  # one date offset per person, ID birth date included
    # The same person in another note of the set gets the same name surrogate.
    again = a.deidentify("医师签名：张伟\n", "zh", "P1").text
    assert new["NAME"] in again
    other = Deidentifier(b"other-key").deidentify(text, "zh", "P1").text
    assert other != ra.text


HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF)


@st.composite
def phi_values(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["id", "mobile", "name", "date", "addr", "text"]))
    if kind == "id":
        region = draw(st.sampled_from(["110105", "440303", "360102", "510107"]))
        born = draw(
            st.dates(
                min_value=__import__("datetime").date(1920, 1, 1),
                max_value=__import__("datetime").date(2025, 12, 31),
            )
        )
        seq = draw(st.from_regex(r"\d{3}", fullmatch=True))
        return "身份证号：" + _id(region + born.strftime("%Y%m%d") + seq)
    if kind == "mobile":
        number = draw(st.from_regex(r"1[3-9]\d{9}", fullmatch=True))
        sep = draw(st.sampled_from(["", "-", " "]))
        return "电话" + number[:3] + sep + number[3:7] + sep + number[7:]
    if kind == "name":
        return (
            "姓名："
            + draw(st.sampled_from("王李张刘陈杨黄赵"))
            + draw(st.text(HAN, min_size=1, max_size=2))
            + " "
        )
    if kind == "date":
        d = draw(
            st.dates(
                min_value=__import__("datetime").date(2000, 1, 1),
                max_value=__import__("datetime").date(2030, 12, 31),
            )
        )
        style = draw(st.sampled_from(["%Y-%m-%d", "%Y年%m月%d日", "%m/%d/%Y", "%B %d, %Y"]))
        return "记录时间：" + d.strftime(style)
    if kind == "addr":
        return (
            "住址：广东省深圳市福田区"
            + draw(st.text(HAN, min_size=1, max_size=3))
            + "路"
            + str(draw(st.integers(1, 999)))
            + "号"
        )
    return draw(
        st.text(st.sampled_from(list("无胸痛发热。，患者有高血压 0123456789\n")), max_size=20)
    )


notes = st.lists(phi_values(), min_size=1, max_size=8).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=notes, lang=st.sampled_from(["zh", "en"]))
def test_deid_invariants(text: str, lang: str) -> None:
    deid = Deidentifier(KEY)
    out = deid.deidentify(text, lang, "P1")
    # Offsets: each reported span maps to the replaced text and its surrogate.
    pos_in = pos_out = 0
    pieces = []
    for r in out.replacements:
        assert r.start >= pos_in
        assert text[pos_in : r.start] == out.text[pos_out : r.new_start]
        pieces.append(text[pos_in : r.start])
        pieces.append(out.text[r.new_start : r.new_end])
        assert (
            deid.surrogate(r.entity_type, text[r.start : r.end], "P1")
            == out.text[r.new_start : r.new_end]
        )
        pos_in, pos_out = r.end, r.new_end
    assert text[pos_in:] == out.text[pos_out:]
    assert "".join(pieces) + text[pos_in:] == out.text
    # Never a valid 身份证号 or mobile number left.
    assert leaks(out.text) == []
    # Idempotent.
    assert deid.deidentify(out.text, lang, "P1").text == out.text
