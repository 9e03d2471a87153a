"""The EMR's CDA R2 documents following WS/T 500 (电子病历共享文档规范).

Four document types: 门(急)诊病历 C0002 for outpatient and emergency visits; 入院记录 C0034,
出院小结 C0053 and 住院病案首页 C0032 for each inpatient stay. Each carries the WS/T 500
header (realmCode CN, typeId POCD_MT000040, the document's templateId, id, code in the
2.16.156.10011.2.4 system, title, effectiveTime, confidentialityCode, languageCode,
recordTarget, author, custodian) and Chinese narrative sections with coded diagnosis entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lxml import etree

from lakehouse.synthetic import catalog
from lakehouse.synthetic.dirt import DefectCode, Dirt, Landing
from lakehouse.synthetic.model import Encounter, Patient, Registration, Site, Staff
from lakehouse.synthetic.truth import TruthWriter

NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
LOINC = "2.16.840.1.113883.6.1"
ICD10 = "2.16.156.10011.2.3.3.11"
#: document code -> (title, templateId root)
DOC_TYPES = {
    "C0002": ("门(急)诊病历", "2.16.156.10011.2.1.1.22"),
    "C0032": ("住院病案首页", "2.16.156.10011.2.1.1.52"),
    "C0034": ("入院记录", "2.16.156.10011.2.1.1.54"),
    "C0053": ("出院小结", "2.16.156.10011.2.1.1.73"),
}
SECTIONS = {
    "主诉": "10154-3",
    "现病史": "10164-2",
    "既往史": "11348-0",
    "家族史": "10157-6",
    "体格检查": "29545-1",
    "辅助检查": "30954-2",
    "诊断": "29548-5",
    "入院诊断": "46241-6",
    "住院过程": "8648-8",
    "出院诊断": "11535-2",
    "出院医嘱": "8653-8",
    "治疗计划": "18776-5",
    "用药": "10160-0",
}
_SEX = {"M": ("1", "男性"), "F": ("2", "女性")}


def _el(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
    node = etree.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def _ts(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")


def _header(root: Any, code: str, doc_id: str, at: datetime) -> None:
    title, template = DOC_TYPES[code]
    _el(root, "realmCode", code="CN")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_MT000040")
    _el(root, "templateId", root=template)
    _el(root, "id", root="2.16.156.10011.1.1", extension=doc_id)
    _el(
        root,
        "code",
        code=code,
        codeSystem="2.16.156.10011.2.4",
        codeSystemName="卫生信息共享文档规范编码体系",
    )
    _el(root, "title", title)
    _el(root, "effectiveTime", value=_ts(at))
    _el(
        root,
        "confidentialityCode",
        code="N",
        codeSystem="2.16.840.1.113883.5.25",
        codeSystemName="Confidentiality",
        displayName="正常访问保密级别",
    )
    _el(root, "languageCode", code="zh-CN")
    _el(root, "setId", root="2.16.156.10011.1.1", extension=doc_id)
    _el(root, "versionNumber", value="1")


def _record_target(root: Any, p: Patient, reg: Registration, e: Encounter, site: Site) -> None:
    role = _el(
        _el(root, "recordTarget", typeCode="RCT", contextControlCode="OP"),
        "patientRole",
        classCode="PAT",
    )
    id_root = "2.16.156.10011.1.12" if e.kind == "I" else "2.16.156.10011.1.11"
    _el(role, "id", root=id_root, extension=reg.local_id)
    addr = _el(role, "addr", use="H")
    a = reg.address
    for tag, value in (
        ("houseNumber", a.street),
        ("county", a.district),
        ("city", a.city),
        ("state", a.province),
        ("postalCode", a.postcode),
    ):
        _el(addr, tag, value)
    _el(role, "telecom", value=f"tel:{reg.phone}")
    pat = _el(role, "patient", classCode="PSN", determinerCode="INSTANCE")
    if reg.id_card:
        _el(pat, "id", root="2.16.156.10011.1.3", extension=reg.id_card)
    _el(pat, "name", reg.name)
    code, label = _SEX[p.person.sex]
    _el(
        pat,
        "administrativeGenderCode",
        code=code,
        codeSystem="2.16.156.10011.2.3.3.4",
        codeSystemName="生理性别代码表(GB/T 2261.1)",
        displayName=label,
    )
    _el(pat, "birthTime", value=p.person.birth_date.strftime("%Y%m%d"))
    org = _el(role, "providerOrganization", classCode="ORG", determinerCode="INSTANCE")
    _el(org, "id", root="2.16.156.10011.1.5", extension=site.code)
    _el(org, "name", site.name)


def _author_custodian(root: Any, doctor: Staff, site: Site, e: Encounter, at: datetime) -> None:
    author = _el(root, "author", typeCode="AUT", contextControlCode="OP")
    _el(author, "time", value=_ts(at))
    assigned = _el(author, "assignedAuthor", classCode="ASSIGNED")
    _el(assigned, "id", root="2.16.156.10011.1.7", extension=doctor.staff_id)
    _el(
        _el(assigned, "assignedPerson", classCode="PSN", determinerCode="INSTANCE"),
        "name",
        doctor.name,
    )
    cust = _el(_el(root, "custodian", typeCode="CST"), "assignedCustodian", classCode="ASSIGNED")
    org = _el(cust, "representedCustodianOrganization", classCode="ORG", determinerCode="INSTANCE")
    _el(org, "id", root="2.16.156.10011.1.5", extension=site.code)
    _el(org, "name", site.name)
    enc = _el(_el(root, "componentOf"), "encompassingEncounter")
    _el(enc, "id", root="2.16.156.10011.1.13", extension=e.visit_no)
    period = _el(enc, "effectiveTime")
    _el(period, "low", value=_ts(e.start))
    _el(period, "high", value=_ts(e.end))


def _section(body: Any, title: str, text: str, e: Encounter | None = None) -> None:
    sec = _el(_el(body, "component"), "section")
    _el(sec, "code", code=SECTIONS[title], codeSystem=LOINC, codeSystemName="LOINC")
    _el(sec, "title", title)
    _el(sec, "text", text)
    if e is None:
        return
    for d in e.diagnoses:
        obs = _el(_el(sec, "entry"), "observation", classCode="OBS", moodCode="EVN")
        _el(
            obs,
            "code",
            code="DE05.01.024.00",
            codeSystem="2.16.156.10011.2.2.1",
            displayName="诊断代码",
        )
        value = _el(
            obs,
            "value",
            code=d.icd10,
            codeSystem=ICD10,
            codeSystemName="ICD-10",
            displayName=d.name,
        )
        value.set(f"{{{XSI}}}type", "CD")


def _narrative(p: Patient, e: Encounter) -> dict[str, str]:
    cond = catalog.conditions()
    primary = e.diagnoses[0]
    spec = cond.get(primary.key, {})
    symptom = spec.get("symptom_zh", "体检")
    others = [
        cond[c.key]["zh"]
        for c in p.conditions
        if c.key != primary.key and c.onset <= e.start.date()
    ]
    history = "有" + "、".join(others) + "病史。" if others else "否认高血压、糖尿病病史。"
    family = "、".join(cond[k]["zh"] for k in p.family)
    meds = "；".join(f"{catalog.drugs()[m.drug]['zh']} {m.dose:g}{m.unit} {m.freq}" for m in e.meds)
    labs = "；".join(f"{catalog.labs()[x.code]['zh']} {x.value:g}{x.unit}" for x in e.labs[:6])
    dept = catalog.departments()[e.dept]["zh"]
    diag = "；".join(f"{d.name}({d.icd10})" for d in e.diagnoses)
    return {
        "主诉": f"{symptom}{(e.start.day % 9) + 1}天。",
        "现病史": f"患者{(e.start.day % 9) + 1}天前出现{symptom}，遂来我院{dept}就诊。",
        "既往史": history,
        "家族史": f"家族中有{family}病史。" if family else "否认家族遗传病史。",
        "体格检查": "T 36.6℃，P 78次/分，R 18次/分，BP 128/80mmHg。神志清，心肺听诊未见明显异常。",
        "辅助检查": labs or "暂无。",
        "诊断": diag,
        "治疗计划": meds or "对症处理，门诊随访。",
        "住院过程": f"入院后完善相关检查，予{meds or '对症支持治疗'}，病情好转。",
        "出院医嘱": "规律服药，定期复查，不适随诊。",
        "用药": meds or "无。",
    }


def _document(
    code: str, p: Patient, reg: Registration, e: Encounter, site: Site, doctor: Staff
) -> tuple[str, Any]:
    doc_id = f"{e.encounter_id}-{code}"
    at = e.end if code in ("C0053", "C0032") else e.start
    root = etree.Element(f"{{{NS}}}ClinicalDocument", nsmap={None: NS, "xsi": XSI})
    _header(root, code, doc_id, at)
    _record_target(root, p, reg, e, site)
    _author_custodian(root, doctor, site, e, at)
    body = _el(_el(root, "component"), "structuredBody")
    text = _narrative(p, e)
    layout = {
        "C0002": ["主诉", "现病史", "既往史", "体格检查", "辅助检查", "诊断", "治疗计划"],
        "C0034": ["主诉", "现病史", "既往史", "家族史", "体格检查", "辅助检查", "入院诊断"],
        "C0053": ["入院诊断", "住院过程", "出院诊断", "出院医嘱", "用药"],
        "C0032": ["出院诊断", "住院过程", "辅助检查"],
    }[code]
    for title in layout:
        coded = title in ("诊断", "入院诊断", "出院诊断")
        _section(body, title, text.get(title, text["诊断"]), e if coded else None)
    return doc_id, root


class Emr:
    """Writes each encounter's CDA documents for one site."""

    def __init__(self, site: Site, landing: Landing, truth: TruthWriter) -> None:
        self.site, self.landing, self.truth = site, landing, truth

    def add_patient(self, p: Patient, staff: dict[str, Staff], dirt: Dirt) -> None:
        reg = p.registrations.get(self.site.code)
        if reg is None:
            return
        for e in p.at(self.site.code):
            codes = ["C0034", "C0053", "C0032"] if e.kind == "I" else ["C0002"]
            for code in codes:
                doc_id, root = _document(code, p, reg, e, self.site, staff[e.doctor])
                name = f"{code}_{e.visit_no}.xml"
                rel = self.landing.path("emr", self.site.code, name)
                encoding = "UTF-8"
                if dirt.roll("wrong_encoding"):
                    encoding = "GB18030"
                    dirt.record(
                        DefectCode.WRONG_ENCODING,
                        "emr",
                        self.site.code,
                        rel,
                        doc_id,
                        "GB18030 bytes, XML declaration UTF-8",
                    )
                xml = etree.tostring(root, encoding="unicode", pretty_print=True)
                data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + xml).encode(encoding)
                self.landing.deliver(dirt, "emr", self.site.code, name, data, 1)
                self.truth.add(
                    "documents",
                    doc_id=doc_id,
                    source="emr",
                    institution_code=self.site.code,
                    file=rel,
                    person_id=p.person.person_id,
                    encounter_id=e.encounter_id,
                    doc_type=code,
                    title=DOC_TYPES[code][0],
                    language="zh",
                )
