"""WS/T 500 documents rendered from silver rows (no Spark): header, well-formedness under a
hardened parser, and hostile values staying text."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from defusedxml import ElementTree as SafeTree
from lxml import etree

from lakehouse.errors import LakehouseError
from serving.interop import cda

NS = "{urn:hl7-org:v3}"
HOSTILE = '</text><script>x</script>&lt;&amp;<!DOCTYPE a [<!ENTITY e "boom">]>&e;\x00\x0b]]>'


def _sources(kind: str = "inpatient", hostile: str = "") -> cda.Sources:
    encounter = {
        "institution_code": "H1", "encounter_id": "V9", "patient_id": "P9",
        "encounter_class": kind, "attending_provider_id": "D1",
        "attending_provider_name": f"王医生{hostile}", "start_at": datetime(2026, 1, 2, 8, 30),
        "end_at": datetime(2026, 1, 9, 10, 0),
    }  # fmt: skip
    patient = {"patient_id": "P9", "name": f"张三{hostile}", "sex_code": "1",
               "birth_date": date(1960, 5, 17), "id_card_no": None}  # fmt: skip
    diagnoses = [
        {"standard_vocabulary": "ICD10", "standard_code": "E11.9",
         "source_name": f"糖尿病{hostile}", "diagnosis_type": "discharge"},
        {"standard_vocabulary": "LOCAL:H1:DX", "source_code": "X1", "source_name": "其他"},
    ]  # fmt: skip
    meds = [{"drug_source_name": f"二甲双胍{hostile}", "dose": 0.5, "dose_unit": "g",
             "route": "口服", "frequency": "bid"}]  # fmt: skip
    labs = [{"test_source_name": "糖化血红蛋白", "value_as_number": 7.9, "unit_source": "%",
             "abnormal_flag": "H"}]  # fmt: skip
    return cda.Sources(encounter, patient, diagnoses, meds, labs, custodian_name="第一医院")


@pytest.mark.parametrize(
    ("code", "kind", "template"),
    [
        ("C0001", "inpatient", "2.16.156.10011.2.1.1.21"),
        ("C0002", "outpatient", "2.16.156.10011.2.1.1.22"),
        ("C0032", "inpatient", "2.16.156.10011.2.1.1.52"),
        ("C0034", "inpatient", "2.16.156.10011.2.1.1.54"),
        ("C0053", "inpatient", "2.16.156.10011.2.1.1.73"),
    ],
)
def test_rendered_documents_carry_the_ws_t_500_header(code: str, kind: str, template: str) -> None:
    data = cda.rendered(code, _sources(kind))
    cda.check(data, code)
    root = SafeTree.fromstring(data, forbid_dtd=True)
    assert root.find(f"{NS}realmCode").get("code") == "CN"
    assert root.find(f"{NS}typeId").get("extension") == "POCD_MT000040"
    assert root.find(f"{NS}templateId").get("root") == template
    header = root.find(f"{NS}code")
    assert (header.get("code"), header.get("codeSystem")) == (code, "2.16.156.10011.2.4")
    assert root.find(f"{NS}title").text == cda.TEMPLATES[code][0]
    assert root.find(f".//{NS}encompassingEncounter/{NS}id").get("extension") == "V9"
    # Only the ICD-10 diagnosis is a coded entry; the local one is in the text alone.
    values = [v.get("code") for v in root.iter(f"{NS}value")]
    assert set(values) <= {"E11.9"}


def test_hostile_values_stay_text_under_a_hardened_parser() -> None:
    data = cda.rendered("C0053", _sources(hostile=HOSTILE))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    assert not root.xpath("//*[local-name()='script']")
    assert b"<!DOCTYPE" not in data
    assert b"<!ENTITY" not in data
    kept = HOSTILE.replace("\x00", "").replace("\x0b", "")
    names = root.xpath("//*[local-name()='patient']/*[local-name()='name']/text()")
    assert names == [f"张三{kept}"]
    texts = "".join(root.xpath("//*[local-name()='text']/text()"))
    assert f"二甲双胍{kept}" in texts
    SafeTree.fromstring(data, forbid_dtd=True)


def test_applicable_codes_and_the_empty_body() -> None:
    src = _sources("outpatient")
    assert cda.applicable(src.encounter) == ("C0001", "C0002")
    running = {**src.encounter, "encounter_class": "inpatient", "end_at": None}
    assert cda.applicable(running) == ("C0001", "C0034")  # no discharge documents yet
    empty = cda.Sources(src.encounter, None, [], [], [])
    root = SafeTree.fromstring(cda.rendered("C0002", empty))
    assert [t.text for t in root.iter(f"{NS}text")] == ["无记录"]


def test_check_refuses_what_is_not_the_document_asked_for() -> None:
    data = cda.rendered("C0001", _sources())
    with pytest.raises(LakehouseError) as caught:
        cda.check(data, "C0002")
    assert caught.value.code.id == "LH-IOP-004"
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'
    with pytest.raises(LakehouseError):
        cda.check(bomb, "C0001")
