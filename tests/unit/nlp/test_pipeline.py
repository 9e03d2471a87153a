"""Rule pipelines: (text, expected spans and assertions) tables for zh and en."""

from __future__ import annotations

import pytest

from lakehouse.errors import ErrorCode, LakehouseError
from models.nlp import load_pipeline
from models.nlp.resources import RESOURCE_NAMES, load_resource, versions

ZH = [
    ("患者有高血压病史3年，规律服药。", [("高血压", "CONDITION", "present", "HTN")]),
    ("否认2型糖尿病史。", [("2型糖尿病", "CONDITION", "negated", "T2DM")]),
    ("无胸痛。", [("胸痛", "SYMPTOM", "negated", "SYMPTOM:chest pain")]),
    ("未见肺炎表现。", [("肺炎", "CONDITION", "negated", "PNA")]),
    ("考虑慢性肾脏病3期可能。", [("慢性肾脏病3期", "CONDITION", "possible", "CKD")]),
    ("疑似贫血，待进一步检查。", [("贫血", "CONDITION", "possible", "ANE")]),
    ("肺结节待排。", [("肺结节", "CONDITION", "possible", "NOD")]),
    ("不除外冠心病。", [("冠心病", "CONDITION", "possible", "CHD")]),
    ("母亲患有高脂血症。", [("高脂血症", "CONDITION", "family", "HLP")]),
    ("家族史：父亲有高血压病史。", [("高血压", "CONDITION", "family", "HTN")]),
    ("既往肺炎病史，已治愈。", [("肺炎", "CONDITION", "historical", "PNA")]),
    ("3年前曾患贫血。", [("贫血", "CONDITION", "historical", "ANE")]),
    ("如出现胸痛及时就诊。", [("胸痛", "SYMPTOM", "hypothetical", "SYMPTOM:chest pain")]),
    (
        "无发热，咳嗽3天。",
        [
            ("发热", "SYMPTOM", "negated", "SYMPTOM:fever"),
            ("咳嗽", "SYMPTOM", "present", "SYMPTOM:cough"),
        ],
    ),
    (
        "诊断：高血压、2型糖尿病。",
        [("高血压", "CONDITION", "present", "HTN"), ("2型糖尿病", "CONDITION", "present", "T2DM")],
    ),
    (
        "检查所见：右下肺见斑片状实变影，考虑炎症。\n",
        [("右下肺见斑片状实变影，考虑炎症。", "FINDING", "present", "consolidation")],
    ),
    ("检查所见：双肺纹理清晰，未见明显实质性病变。\n", []),
]

EN = [
    (
        "Known history of hypertension, on treatment.",
        [("hypertension", "CONDITION", "present", "HTN")],
    ),
    ("Denies chest pain.", [("chest pain", "SYMPTOM", "negated", "SYMPTOM:chest pain")]),
    ("No anemia.", [("anemia", "CONDITION", "negated", "ANE")]),
    ("Patient without fever.", [("fever", "SYMPTOM", "negated", "SYMPTOM:fever")]),
    ("Possible pneumonia.", [("pneumonia", "CONDITION", "possible", "PNA")]),
    ("Rule out pulmonary nodule.", [("pulmonary nodule", "CONDITION", "possible", "NOD")]),
    (
        "Suspected coronary artery disease.",
        [("coronary artery disease", "CONDITION", "possible", "CHD")],
    ),
    (
        "Family history of type 2 diabetes (mother).",
        [("type 2 diabetes", "CONDITION", "family", "T2DM")],
    ),
    ("History of pneumonia, resolved.", [("pneumonia", "CONDITION", "historical", "PNA")]),
    (
        "Call if chest pain should develop.",
        [("chest pain", "SYMPTOM", "hypothetical", "SYMPTOM:chest pain")],
    ),
    (
        "Assessment: chronic kidney disease stage 3. No fever.",
        [
            ("chronic kidney disease stage 3", "CONDITION", "present", "CKD"),
            ("fever", "SYMPTOM", "negated", "SYMPTOM:fever"),
        ],
    ),
    (
        "Findings: Patchy consolidation in the right lower lobe, consistent with pneumonia.\n",
        [
            (
                "Patchy consolidation in the right lower lobe, consistent with pneumonia.",
                "FINDING",
                "present",
                "consolidation",
            )
        ],
    ),
]


def _ents(lang: str, text: str) -> list[tuple[str, str, str, str]]:
    doc = load_pipeline(lang)(text)
    labels = ("CONDITION", "SYMPTOM", "FINDING")
    return [(e.text, e.label_, e._.assertion, e._.concept) for e in doc.ents if e.label_ in labels]


@pytest.mark.parametrize(("text", "expected"), ZH)
def test_zh_entities_and_assertions(text: str, expected: list[tuple[str, ...]]) -> None:
    assert _ents("zh", text) == expected


@pytest.mark.parametrize(("text", "expected"), EN)
def test_en_entities_and_assertions(text: str, expected: list[tuple[str, ...]]) -> None:
    assert _ents("en", text) == expected


@pytest.mark.parametrize(
    ("lang", "text", "drug", "dose", "route", "freq"),
    [
        ("zh", "阿托伐他汀钙片 20mg 口服 qn。", "阿托伐他汀钙片", "20mg", "口服", "qn"),
        ("en", "Metformin 500 mg po bid.", "Metformin", "500 mg", "po", "bid"),
    ],
)
def test_drug_attributes(lang: str, text: str, drug: str, dose: str, route: str, freq: str) -> None:
    (ent,) = [e for e in load_pipeline(lang)(text).ents if e.label_ == "DRUG"]
    assert (ent.text, ent._.dose, ent._.route, ent._.frequency) == (drug, dose, route, freq)
    assert ent._.system == "ATC"
    assert ent._.code


@pytest.mark.parametrize(
    ("lang", "text", "lab", "value", "loinc"),
    [
        ("zh", "血糖 7.8mmol/L，", "血糖", "7.8mmol/L", "2345-7"),
        ("zh", "BP 135/85mmHg，HR 78次/分", "BP", "135/85mmHg", "85354-9"),
        ("en", "Creatinine 132 umol/L.", "Creatinine", "132 umol/L", "2160-0"),
    ],
)
def test_lab_values(lang: str, text: str, lab: str, value: str, loinc: str) -> None:
    ent = next(e for e in load_pipeline(lang)(text).ents if e.label_ in ("LAB", "VITAL"))
    assert (ent.text, ent._.value, ent._.code) == (lab, value, loinc)


def test_sections() -> None:
    doc = load_pipeline("zh")("主诉：胸痛2天。\n既往史：高血压。\n家族史：糖尿病。\n")
    got = {e.text: (e._.section, e._.assertion) for e in doc.ents}
    assert got["胸痛"] == ("chief_complaint", "present")
    assert got["高血压"] == ("pmh", "historical")
    assert got["糖尿病"] == ("family_history", "family")


def test_pipeline_is_cached_and_versioned() -> None:
    assert load_pipeline("zh") is load_pipeline("zh")
    assert load_pipeline("en").meta["resources"] == versions()
    assert all(load_resource(n)["version"] for n in RESOURCE_NAMES)
    with pytest.raises(LakehouseError) as info:
        load_pipeline("fr")
    assert info.value.code is ErrorCode.NLP_LANGUAGE_UNSUPPORTED
    with pytest.raises(LakehouseError) as info:
        load_resource("nope")
    assert info.value.code is ErrorCode.NLP_RESOURCE_INVALID


def test_entity_offsets_align_with_tokens() -> None:
    text = "否认慢性肾脏病3期史。母亲患有冠状动脉粥样硬化性心脏病。"
    doc = load_pipeline("zh")(text)
    assert [(e.start_char, e.end_char) for e in doc.ents] == [(2, 9), (15, 27)]
