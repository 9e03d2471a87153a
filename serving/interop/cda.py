"""WS/T 500 shared documents (电子病历共享文档) of an encounter, written from silver rows.

A document the source sent is held in ``silver.clinical_document`` as its header fields and
sections (not its bytes): :func:`stored` writes it back from that row, its templateId, code,
id and sections as sent. For C0001/C0002/C0032/C0034/C0053 not sent, :func:`rendered`
writes one from silver's encounter, patient, diagnoses, medication orders and lab results:
the WS/T 500 header (realmCode CN, typeId POCD_MT000040, templateId, code in the
2.16.156.10011.2.4 system) and the sections silver has data for; a section silver has no
rows for is left out (nothing is made up).

Text and attribute values go through lxml's serializer (escaped: a value holding markup
stays text) after characters XML 1.0 does not allow are dropped; :func:`check` parses the
result with defusedxml (no DTD, no entities, no network) before it is served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from defusedxml import ElementTree as SafeTree
from lxml import etree

from lakehouse.errors import ErrorCode, error
from lakehouse.synthetic.cda import DOC_TYPES, ICD10, LOINC, NS, SECTIONS, XSI

#: document code -> (title, templateId root): the synthetic EMR's four and 病历概要.
TEMPLATES: dict[str, tuple[str, str]] = {
    "C0001": ("病历概要", "2.16.156.10011.2.1.1.21"),
    **DOC_TYPES,
}
DOCUMENT_CODES = "2.16.156.10011.2.4"
DOCUMENT_ID_ROOT = "2.16.156.10011.1.1"
#: The codes served for a visit of each class.
BY_CLASS = {
    "inpatient": ("C0001", "C0034", "C0053", "C0032"),
    "outpatient": ("C0001", "C0002"),
    "emergency": ("C0001", "C0002"),
}
#: Codes written only once the stay has ended (discharge summary, front sheet).
AFTER_DISCHARGE = frozenset({"C0053", "C0032"})
_LAYOUT = {
    "C0001": ("诊断", "用药", "辅助检查"),
    "C0002": ("诊断", "辅助检查", "用药"),
    "C0034": ("入院诊断", "辅助检查"),
    "C0053": ("入院诊断", "出院诊断", "用药", "辅助检查"),
    "C0032": ("出院诊断", "辅助检查"),
}
_DIAGNOSIS_TYPE = {"入院诊断": "admission", "出院诊断": "discharge"}
_SEX = {"1": "男性", "2": "女性", "0": "未知的性别", "9": "未说明的性别"}
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Sources:
    """The silver rows a rendered document is written from (each guarded already)."""

    encounter: dict[str, Any]
    patient: dict[str, Any] | None
    diagnoses: list[dict[str, Any]]
    medications: list[dict[str, Any]]
    labs: list[dict[str, Any]]
    custodian_name: str | None = None


def applicable(encounter: dict[str, Any]) -> tuple[str, ...]:
    """The codes an encounter has documents of (C0053/C0032 only after discharge)."""
    codes = BY_CLASS.get(str(encounter.get("encounter_class") or ""), ("C0001",))
    ended = encounter.get("discharge_at") or encounter.get("end_at")
    return tuple(c for c in codes if ended or c not in AFTER_DISCHARGE)


def effective(code: str, encounter: dict[str, Any]) -> datetime | None:
    """The document time: the end of the stay for C0053/C0032 (and C0001), else its start."""
    end = encounter.get("discharge_at") or encounter.get("end_at")
    start = encounter.get("admit_at") or encounter.get("start_at")
    if code in AFTER_DISCHARGE or code == "C0001":
        return end or start
    return start


def clean(value: Any) -> str | None:
    """Text XML 1.0 can hold (characters it forbids dropped), or None for no value."""
    if value is None:
        return None
    text = _NOT_XML.sub("", value if isinstance(value, str) else str(value))
    return text or None


def _el(parent: Any, tag: str, text: Any = None, **attrs: Any) -> Any:
    kept = {k: v for k, v in ((k, clean(v)) for k, v in attrs.items()) if v is not None}
    node = etree.SubElement(parent, f"{{{NS}}}{tag}", kept)
    if text is not None:
        node.text = clean(text)
    return node


def _ts(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S")
    return value.strftime("%Y%m%d")


def _header(root: Any, code: str, doc_id: str, at: datetime | None, title: str) -> None:
    _el(root, "realmCode", code="CN")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_MT000040")
    _el(root, "templateId", root=TEMPLATES[code][1])
    _el(root, "id", root=DOCUMENT_ID_ROOT, extension=doc_id)
    _el(
        root, "code", code=code, codeSystem=DOCUMENT_CODES,
        codeSystemName="卫生信息共享文档规范编码体系",
    )  # fmt: skip
    _el(root, "title", title)
    _el(root, "effectiveTime", value=_ts(at))
    _el(
        root, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25",
        codeSystemName="Confidentiality", displayName="正常访问保密级别",
    )  # fmt: skip
    _el(root, "languageCode", code="zh-CN")
    _el(root, "setId", root=DOCUMENT_ID_ROOT, extension=doc_id)
    _el(root, "versionNumber", value="1")


def _record_target(root: Any, encounter: dict[str, Any], patient: dict[str, Any]) -> None:
    role = _el(
        _el(root, "recordTarget", typeCode="RCT", contextControlCode="OP"),
        "patientRole",
        classCode="PAT",
    )
    inpatient = encounter.get("encounter_class") == "inpatient"
    id_root = "2.16.156.10011.1.12" if inpatient else "2.16.156.10011.1.11"
    _el(role, "id", root=id_root, extension=patient.get("patient_id"))
    pat = _el(role, "patient", classCode="PSN", determinerCode="INSTANCE")
    if patient.get("id_card_no"):
        _el(pat, "id", root="2.16.156.10011.1.3", extension=patient["id_card_no"])
    if patient.get("name"):
        _el(pat, "name", patient["name"])
    sex = patient.get("sex_code")
    if sex:
        _el(
            pat, "administrativeGenderCode", code=sex, codeSystem="2.16.156.10011.2.3.3.4",
            codeSystemName="生理性别代码表(GB/T 2261.1)", displayName=_SEX.get(str(sex)),
        )  # fmt: skip
    if patient.get("birth_date"):
        _el(pat, "birthTime", value=_ts(patient["birth_date"]))


def _author(root: Any, at: datetime | None, staff_id: Any, name: Any) -> None:
    author = _el(root, "author", typeCode="AUT", contextControlCode="OP")
    _el(author, "time", value=_ts(at))
    assigned = _el(author, "assignedAuthor", classCode="ASSIGNED")
    _el(assigned, "id", root="2.16.156.10011.1.7", extension=staff_id)
    if name:
        person = _el(assigned, "assignedPerson", classCode="PSN", determinerCode="INSTANCE")
        _el(person, "name", name)


def _custodian(root: Any, code: Any, name: Any) -> None:
    cust = _el(_el(root, "custodian", typeCode="CST"), "assignedCustodian", classCode="ASSIGNED")
    org = _el(cust, "representedCustodianOrganization", classCode="ORG", determinerCode="INSTANCE")
    _el(org, "id", root="2.16.156.10011.1.5", extension=code)
    if name:
        _el(org, "name", name)


def _component_of(root: Any, encounter: dict[str, Any]) -> None:
    enc = _el(_el(root, "componentOf"), "encompassingEncounter")
    _el(enc, "id", root="2.16.156.10011.1.13", extension=encounter.get("encounter_id"))
    period = _el(enc, "effectiveTime")
    _el(period, "low", value=_ts(encounter.get("admit_at") or encounter.get("start_at")))
    end = encounter.get("discharge_at") or encounter.get("end_at")
    if end is not None:
        _el(period, "high", value=_ts(end))


def _section(body: Any, code: Any, system: Any, title: Any, text: Any) -> Any:
    sec = _el(_el(body, "component"), "section")
    _el(
        sec,
        "code",
        code=code,
        codeSystem=system,
        codeSystemName="LOINC" if system == LOINC else None,
    )
    _el(sec, "title", title)
    _el(sec, "text", text)
    return sec


def _diagnosis_entries(sec: Any, diagnoses: list[dict[str, Any]]) -> None:
    for d in diagnoses:
        if d.get("standard_vocabulary") != "ICD10" or not d.get("standard_code"):
            continue  # an entry needs a code system WS/T 500 names
        obs = _el(_el(sec, "entry"), "observation", classCode="OBS", moodCode="EVN")
        _el(
            obs, "code", code="DE05.01.024.00", codeSystem="2.16.156.10011.2.2.1",
            displayName="诊断代码",
        )  # fmt: skip
        value = _el(
            obs, "value", code=d["standard_code"], codeSystem=ICD10, codeSystemName="ICD-10",
            displayName=d.get("standard_name") or d.get("source_name"),
        )  # fmt: skip
        value.set(f"{{{XSI}}}type", "CD")


def _diagnosis_text(diagnoses: list[dict[str, Any]]) -> str:
    return "；".join(
        f"{d.get('source_name') or d.get('standard_name') or ''}"
        f"({d.get('standard_code') or d.get('source_code') or ''})"
        for d in diagnoses
    )


def _medication_text(meds: list[dict[str, Any]]) -> str:
    def one(m: dict[str, Any]) -> str:
        dose = f"{m['dose']:g}{m.get('dose_unit') or ''}" if m.get("dose") is not None else ""
        name = m.get("drug_source_name") or m.get("drug_standard_name") or ""
        return " ".join(p for p in (name, dose, m.get("route"), m.get("frequency")) if p)

    return "；".join(one(m) for m in meds)


def _lab_text(labs: list[dict[str, Any]]) -> str:
    def one(x: dict[str, Any]) -> str:
        name = x.get("test_source_name") or x.get("test_standard_name") or x.get("test_local_name")
        value = x.get("value_source")
        if value is None and x.get("value_as_number") is not None:
            value = f"{x['value_as_number']:g}"
        flag = f"({x['abnormal_flag']})" if x.get("abnormal_flag") else ""
        return f"{name or ''} {value or ''}{x.get('unit_source') or ''}{flag}".strip()

    return "；".join(one(x) for x in labs)


def _root() -> Any:
    return etree.Element(f"{{{NS}}}ClinicalDocument", nsmap={None: NS, "xsi": XSI})


def _bytes(root: Any) -> bytes:
    out: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
    return out


def rendered(code: str, src: Sources) -> bytes:
    """A WS/T 500 document of type ``code`` written from silver rows."""
    e, inst = src.encounter, src.encounter["institution_code"]
    at = effective(code, e)
    doc_id = f"{inst}-{e['encounter_id']}-{code}-lakehouse"
    root = _root()
    _header(root, code, doc_id, at, TEMPLATES[code][0])
    _record_target(root, e, src.patient or {"patient_id": e.get("patient_id")})
    _author(root, at, e.get("attending_provider_id"), e.get("attending_provider_name"))
    _custodian(root, inst, src.custodian_name)
    _component_of(root, e)
    body = _el(_el(root, "component"), "structuredBody")
    written = 0
    for title in _LAYOUT[code]:
        if title.endswith("诊断"):
            typed = [
                d for d in src.diagnoses if d.get("diagnosis_type") == _DIAGNOSIS_TYPE.get(title)
            ]
            rows = typed or src.diagnoses
            if rows:
                sec = _section(body, SECTIONS[title], LOINC, title, _diagnosis_text(rows))
                _diagnosis_entries(sec, rows)
                written += 1
        elif title == "用药" and src.medications:
            _section(body, SECTIONS[title], LOINC, title, _medication_text(src.medications))
            written += 1
        elif title == "辅助检查" and src.labs:
            _section(body, SECTIONS[title], LOINC, title, _lab_text(src.labs))
            written += 1
    if not written:  # structuredBody needs a component: say that silver holds nothing
        title = _LAYOUT[code][0]
        _section(body, SECTIONS[title], LOINC, title, "无记录")
    return _bytes(root)


def stored(row: dict[str, Any], encounter: dict[str, Any], patient: dict[str, Any] | None) -> bytes:
    """The document a source sent, written back from its ``silver.clinical_document`` row."""
    code = str(row.get("document_type_code") or "")
    root = _root()
    _el(root, "realmCode", code="CN")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_MT000040")
    templates = row.get("template_ids") or ([TEMPLATES[code][1]] if code in TEMPLATES else [])
    for template in templates:
        _el(root, "templateId", root=template)
    root_id, _, extension = str(row["document_id"]).partition("^")
    _el(root, "id", root=root_id or DOCUMENT_ID_ROOT, extension=extension or None)
    _el(
        root, "code", code=code, codeSystem=row.get("document_type_system") or DOCUMENT_CODES,
        codeSystemName="卫生信息共享文档规范编码体系",
    )  # fmt: skip
    _el(root, "title", row.get("title") or TEMPLATES.get(code, ("",))[0])
    _el(root, "effectiveTime", value=_ts(row.get("effective_at")))
    _el(
        root, "confidentialityCode", code=row.get("confidentiality_code") or "N",
        codeSystem="2.16.840.1.113883.5.25",
    )  # fmt: skip
    _el(root, "languageCode", code=row.get("language_code") or "zh-CN")
    set_root, _, set_ext = str(row.get("set_id") or row["document_id"]).partition("^")
    _el(root, "setId", root=set_root or DOCUMENT_ID_ROOT, extension=set_ext or None)
    _el(root, "versionNumber", value=row.get("version_number") or 1)
    who = dict(patient or {"patient_id": row.get("patient_id")})
    who["name"] = row.get("patient_name") or who.get("name")
    who["id_card_no"] = row.get("id_card_no") or who.get("id_card_no")
    _record_target(root, encounter, who)
    _author(root, row.get("effective_at"), row.get("author_id"), row.get("author_name"))
    _custodian(
        root, row.get("custodian_code") or row["institution_code"], row.get("custodian_name")
    )
    _component_of(root, encounter)
    body = _el(_el(root, "component"), "structuredBody")
    sections = row.get("sections") or []
    for s in sections:
        s = s.asDict() if hasattr(s, "asDict") else dict(s)
        _section(body, s.get("code"), s.get("code_system"), s.get("title"), s.get("text"))
    if not sections:
        _section(body, None, None, None, "无记录")
    return _bytes(root)


def check(data: bytes, code: str) -> None:
    """Parse ``data`` with a hardened parser (no DTD, entities or network) and require a
    ClinicalDocument carrying the type's code (``LH-IOP-004`` otherwise)."""
    try:
        root = SafeTree.fromstring(data, forbid_dtd=True)
    except Exception as exc:  # a defusedxml refusal or a parse error: never served
        raise error(ErrorCode.IOP_DOCUMENT_INVALID, name=code, reason=type(exc).__name__) from None
    found = root.find(f"{{{NS}}}code")
    if root.tag != f"{{{NS}}}ClinicalDocument" or found is None or found.get("code") != code:
        raise error(ErrorCode.IOP_DOCUMENT_INVALID, name=code, reason="header")
