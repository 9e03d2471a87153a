"""CDA R2 (EMR: WS/T 500 shared documents, C-CDA) -> silver.

Outputs: ``silver.clinical_document`` (header + sections, ClinicalDocument roots only),
``silver.patient`` (recordTarget), ``silver.encounter`` (componentOf/encompassingEncounter
and C-CDA encounter activities), ``silver.diagnosis`` (WS/T 500 diagnosis entries with
ICD-10 national clinical edition values; C-CDA problem observations), and from C-CDA coded
entries ``lab_result`` (result observations), ``vital_sign`` (vital sign observations),
``medication_order`` (medication activities) and ``procedure`` (procedure activities).

Why a pandas UDF (lxml) and not Spark's ``xpath_*`` functions: those re-parse the whole
document for every call (about forty header and entry values a document), are blind to
namespaces in the way CDA needs (default namespace plus ``xsi:type``), and return one flat
string array per path, so an entry that lacks an attribute misaligns every array after it.
One pass of lxml per document returns a struct (header, sections, entries with their
context); every mapping to silver columns is then Spark code. Parsing is safe: bronze has
refused DOCTYPEs and entities already, and lxml runs with ``resolve_entities=False``,
``no_network=True``, ``load_dtd=False``. Throughput is in ``docs/silver.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from lakehouse.errors import ErrorCode
from lakehouse.silver.base import SilverOutput, blank_to_null, patient_key
from lakehouse.silver.conform import (
    id_card_validity,
    parse_date,
    parse_number,
    parse_timestamp,
    phone_digits,
)

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"

#: CDA codeSystem OIDs -> the terminology service's vocabulary ids (others: the OID itself).
VOCABULARY_BY_OID = {
    "2.16.156.10011.2.3.3.11": "ICD10",  # ICD-10 national clinical edition (WS 364)
    "2.16.840.1.113883.6.3": "ICD10",
    "2.16.840.1.113883.6.90": "ICD10CM",
    "2.16.840.1.113883.6.96": "SNOMED",
    "2.16.840.1.113883.6.1": "LOINC",
    "2.16.840.1.113883.6.88": "RXNORM",
    "2.16.840.1.113883.6.103": "ICD9CM",  # ICD-9-CM diagnoses (US legacy)
    "2.16.156.10011.2.3.3.12": "ICD9CM3",
    "2.16.840.1.113883.6.104": "ICD9CM3",
    "2.16.840.1.113883.6.12": "CPT4",
    "2.16.840.1.113883.6.69": "NDC",
    "2.16.840.1.113883.12.292": "CVX",
    "2.16.840.1.113883.6.73": "ATC",
}
#: WS/T 500 patientRole/id roots that carry the patient id (门诊号, 住院号), in preference.
PATIENT_ID_ROOTS = ("2.16.156.10011.1.11", "2.16.156.10011.1.12")
ID_CARD_ROOT = "2.16.156.10011.1.3"
#: C-CDA template ids (root) -> the silver table an entry of that template goes to.
ENTRY_TEMPLATES = {
    "2.16.840.1.113883.10.20.22.4.4": "diagnosis",  # Problem Observation
    "2.16.840.1.113883.10.20.22.4.2": "lab_result",  # Result Observation
    "2.16.840.1.113883.10.20.22.4.27": "vital_sign",  # Vital Sign Observation
    "2.16.840.1.113883.10.20.22.4.16": "medication_order",  # Medication Activity
    "2.16.840.1.113883.10.20.22.4.42": "medication_order",  # Planned Medication Activity
    "2.16.840.1.113883.10.20.22.4.14": "procedure",  # Procedure Activity Procedure
    "2.16.840.1.113883.10.20.22.4.12": "procedure",  # Procedure Activity Act
    "2.16.840.1.113883.10.20.22.4.13": "procedure",  # Procedure Activity Observation
    "2.16.840.1.113883.10.20.22.4.41": "procedure",  # Planned Procedure
    "2.16.840.1.113883.10.20.22.4.49": "encounter",  # Encounter Activity
}
#: WS/T 500 diagnosis entry: observation/code DE05.01.024.00 (诊断代码).
WST_DIAGNOSIS_CODE = "DE05.01.024.00"
#: Section LOINC codes -> diagnosis_type.
DIAGNOSIS_SECTION_TYPE = {
    "46241-6": "admission",  # 入院诊断 / Hospital admission diagnosis
    "42347-5": "admission",
    "11535-2": "discharge",  # 出院诊断 / Hospital discharge diagnosis
    "78375-3": "discharge",
    "29548-5": "primary",  # 诊断
}
_CLINICAL = ("observation", "substanceAdministration", "procedure", "encounter", "act", "supply")
_BLOCK = {"paragraph", "tr", "item", "br", "list", "table", "thead", "tbody", "caption"}

_ENTRY = StructType(
    [
        StructField("idx", IntegerType()),
        StructField("kind", StringType()),
        StructField("skip_reason", StringType()),
        StructField("entry_id", StringType()),
        StructField("section_code", StringType()),
        StructField("mood", StringType()),
        StructField("status", StringType()),
        StructField("code", StringType()),
        StructField("code_system", StringType()),
        StructField("code_name", StringType()),
        StructField("value_type", StringType()),
        StructField("value", StringType()),
        StructField("value_unit", StringType()),
        StructField("value_code", StringType()),
        StructField("value_system", StringType()),
        StructField("value_name", StringType()),
        StructField("time_low", StringType()),
        StructField("time_high", StringType()),
        StructField("range_text", StringType()),
        StructField("interpretation", StringType()),
        StructField("dose", StringType()),
        StructField("dose_unit", StringType()),
        StructField("route", StringType()),
        StructField("frequency", StringType()),
        StructField("performer_id", StringType()),
        StructField("first_in_section", BooleanType()),
    ]
)
_SECTION = StructType(
    [
        StructField("code", StringType()),
        StructField("code_system", StringType()),
        StructField("title", StringType()),
        StructField("text", StringType()),
    ]
)
_STR = (
    "error",
    "root",
    "document_id",
    "type_code",
    "type_system",
    "title",
    "effective",
    "set_id",
    "version",
    "confidentiality",
    "language",
    "patient_id",
    "id_card_no",
    "passport_no",
    "patient_name",
    "sex",
    "birth",
    "phone",
    "street",
    "county",
    "city",
    "state",
    "postcode",
    "ethnicity",
    "author_id",
    "author_name",
    "custodian_code",
    "custodian_name",
    "encounter_id",
    "encounter_code",
    "encounter_low",
    "encounter_high",
    "encounter_dept",
)
PARSED = StructType(
    [StructField(n, StringType()) for n in _STR]
    + [
        StructField("template_ids", ArrayType(StringType())),
        StructField("patient_ids", ArrayType(ArrayType(StringType()))),
        StructField("patient_id_root", StringType()),
        StructField("sections", ArrayType(_SECTION)),
        StructField("entries", ArrayType(_ENTRY)),
    ]
)


# --- the lxml side (runs in the Python workers) ----------------------------------------


def _local(el: Any) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _kids(el: Any, name: str) -> list[Any]:
    return [c for c in el if _local(c) == name] if el is not None else []


def _kid(el: Any, *path: str) -> Any:
    for name in path:
        if el is None:
            return None
        el = next((c for c in el if _local(c) == name), None)
    return el


def _attr(el: Any, name: str) -> str | None:
    if el is None:
        return None
    v = el.get(name)
    return v.strip() if v is not None and v.strip() else None


def _text(el: Any) -> str | None:
    if el is None:
        return None
    t = " ".join("".join(el.itertext()).split())
    return t or None


def _narrative(el: Any) -> str | None:
    """Section text flattened: blocks (paragraph, row, item, br) on their own lines."""
    if el is None:
        return None
    parts: list[str] = []

    def walk(node: Any) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            name = _local(child)
            if name in _BLOCK:
                parts.append("\n")
            elif name in ("td", "th"):
                parts.append(" ")
            if isinstance(child.tag, str):
                walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(el)
    lines = [" ".join(line.split()) for line in "".join(parts).split("\n")]
    text = "\n".join(line for line in lines if line)
    return text or None


def _id(el: Any) -> str | None:
    if el is None:
        return None
    return "^".join(v for v in (_attr(el, "root"), _attr(el, "extension")) if v) or None


def _name(el: Any) -> str | None:
    """A PN: Chinese names as written; family/given parts joined (given first in English)."""
    if el is None:
        return None
    family = [_text(p) for p in _kids(el, "family")]
    given = [_text(p) for p in _kids(el, "given")]
    if not family and not given:
        return _text(el)
    parts = [p for p in (*given, *family) if p]
    if any("\u4e00" <= ch <= "\u9fff" for p in parts for ch in p):
        return "".join(p for p in (*family, *given) if p)
    return " ".join(parts) or None


def _time(el: Any) -> tuple[str | None, str | None]:
    """(low or value, high) of an effectiveTime (IVL_TS, TS or PIVL ignored)."""
    if el is None:
        return None, None
    if _attr(el, "value"):
        return _attr(el, "value"), None
    return _attr(_kid(el, "low"), "value"), _attr(_kid(el, "high"), "value")


def _code(el: Any) -> tuple[str | None, str | None, str | None]:
    """(code, codeSystem, displayName) of a CD; a translation when the code is null."""
    if el is None:
        return None, None, None
    code = _attr(el, "code")
    if code is None:
        for tr in _kids(el, "translation"):
            if _attr(tr, "code"):
                el, code = tr, _attr(tr, "code")
                break
    name = _attr(el, "displayName") or _text(_kid(el, "originalText"))
    return code, _attr(el, "codeSystem"), name


def _templates(el: Any) -> list[str]:
    return [r for r in (_attr(t, "root") for t in _kids(el, "templateId")) if r]


def _kind(el: Any) -> str | None:
    for root in _templates(el):
        if root in ENTRY_TEMPLATES:
            return ENTRY_TEMPLATES[root]
    if _local(el) == "observation":
        code = _attr(_kid(el, "code"), "code")
        value = _kid(el, "value")
        if code == WST_DIAGNOSIS_CODE or _attr(value, "codeSystem") == "2.16.156.10011.2.3.3.11":
            return "diagnosis"
    return None


def _entry(el: Any, idx: int, kind: str, section_code: str | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_ENTRY.fieldNames())
    row.update(
        {
            "idx": idx,
            "kind": kind,
            "skip_reason": None,
            "entry_id": _id(_kid(el, "id")),
            "section_code": section_code,
            "mood": _attr(el, "moodCode"),
            "status": _attr(_kid(el, "statusCode"), "code"),
        }
    )
    low, high = _time(_kid(el, "effectiveTime"))
    row["time_low"], row["time_high"] = low, high
    code_el = _kid(el, "code")
    if kind == "medication_order":
        code_el = _kid(el, "consumable", "manufacturedProduct", "manufacturedMaterial", "code")
    row["code"], row["code_system"], row["code_name"] = _code(code_el)
    value = _kid(el, "value")
    if value is not None:
        vtype = (value.get(f"{XSI}type") or "").split(":")[-1] or None
        row["value_type"] = vtype
        row["value"] = _attr(value, "value") or (_text(value) if vtype in ("ST", "ED") else None)
        row["value_unit"] = _attr(value, "unit")
        row["value_code"], row["value_system"], row["value_name"] = _code(value)
    rng = _kid(el, "referenceRange", "observationRange")
    if rng is not None:
        v = _kid(rng, "value")
        lo, hi = _attr(_kid(v, "low"), "value"), _attr(_kid(v, "high"), "value")
        row["range_text"] = (
            f"{lo or ''}-{hi or ''}" if (lo or hi) and lo and hi else _text(_kid(rng, "text"))
        )
        if not row["range_text"] and (lo or hi):
            row["range_text"] = f">{lo}" if lo else f"<{hi}"
    row["interpretation"] = _attr(_kid(el, "interpretationCode"), "code")
    dose = _kid(el, "doseQuantity")
    row["dose"], row["dose_unit"] = _attr(dose, "value"), _attr(dose, "unit")
    row["route"] = _attr(_kid(el, "routeCode"), "displayName") or _attr(
        _kid(el, "routeCode"), "code"
    )
    for et in _kids(el, "effectiveTime"):
        period = _kid(et, "period")
        if period is not None and _attr(period, "value"):
            row["frequency"] = f"q{_attr(period, 'value')}{_attr(period, 'unit') or ''}"
    performer = _kid(el, "performer", "assignedEntity", "id")
    row["performer_id"] = _id(performer)
    if el.get("negationInd", "").lower() == "true":
        row["skip_reason"] = "negated (negationInd)"
    elif not (row["value_code"] if kind == "diagnosis" else row["code"]):
        row["skip_reason"] = "no code"
    return row


def _entries(root: Any) -> list[dict[str, Any]]:
    """Coded clinical statements in document order, with their section's code."""
    out: list[dict[str, Any]] = []
    # The section elements stay referenced here, so lxml hands back the same proxy objects
    # (and ids) for them while the entries are walked.
    sections = [el for el in root.iter() if _local(el) == "section"]
    position = {id(sec): i for i, sec in enumerate(sections)}
    seen: set[tuple[str, int]] = set()
    idx = 0
    for el in root.iter():
        if _local(el) not in _CLINICAL:
            continue
        kind = _kind(el)
        if kind is None:
            continue
        sec = el.getparent()
        while sec is not None and _local(sec) != "section":
            sec = sec.getparent()
        row = _entry(el, idx, kind, _attr(_kid(sec, "code"), "code"))
        key = (kind, position.get(id(sec), -1))
        row["first_in_section"] = key not in seen
        seen.add(key)
        out.append(row)
        idx += 1
    return out


def _sections(root: Any) -> list[dict[str, Any]]:
    out = []
    for sec in root.iter():
        if _local(sec) != "section":
            continue
        code = _kid(sec, "code")
        out.append(
            {
                "code": _attr(code, "code"),
                "code_system": _attr(code, "codeSystem"),
                "title": _text(_kid(sec, "title")),
                "text": _narrative(_kid(sec, "text")),
            }
        )
    return out


def _header(root: Any, row: dict[str, Any]) -> None:
    code = _kid(root, "code")
    row["document_id"] = _id(_kid(root, "id"))
    row["type_code"], row["type_system"] = _attr(code, "code"), _attr(code, "codeSystem")
    row["template_ids"] = _templates(root)
    row["title"] = _text(_kid(root, "title"))
    row["effective"] = _attr(_kid(root, "effectiveTime"), "value")
    row["set_id"] = _id(_kid(root, "setId"))
    row["version"] = _attr(_kid(root, "versionNumber"), "value")
    row["confidentiality"] = _attr(_kid(root, "confidentialityCode"), "code")
    row["language"] = _attr(_kid(root, "languageCode"), "code")
    author = _kid(root, "author", "assignedAuthor")
    row["author_id"] = _attr(_kid(author, "id"), "extension") or _id(_kid(author, "id"))
    row["author_name"] = _name(_kid(author, "assignedPerson", "name"))
    org = _kid(root, "custodian", "assignedCustodian", "representedCustodianOrganization")
    row["custodian_code"] = _attr(_kid(org, "id"), "extension") or _id(_kid(org, "id"))
    row["custodian_name"] = _text(_kid(org, "name"))
    enc = _kid(root, "componentOf", "encompassingEncounter")
    if enc is not None:
        enc_id = _kid(enc, "id")
        row["encounter_id"] = _attr(enc_id, "extension") or _attr(enc_id, "root")
        row["encounter_code"] = _attr(_kid(enc, "code"), "code")
        row["encounter_low"], row["encounter_high"] = _time(_kid(enc, "effectiveTime"))
        loc = _kid(enc, "location", "healthCareFacility")
        row["encounter_dept"] = _text(_kid(loc, "serviceProviderOrganization", "name")) or _text(
            _kid(loc, "location", "name")
        )


def _record_target(role: Any, row: dict[str, Any]) -> None:
    if role is None:
        return
    patient = _kid(role, "patient")
    ids = [(_attr(i, "root"), _attr(i, "extension")) for i in _kids(role, "id")]
    ids += [(_attr(i, "root"), _attr(i, "extension")) for i in _kids(patient, "id")]
    row["patient_ids"] = [[r or "", e or ""] for r, e in ids if e or r]
    chosen = next(
        ((r, e) for want in PATIENT_ID_ROOTS for r, e in ids if r == want and e),
        next(((r, e) for r, e in ids[:1] if e and r != ID_CARD_ROOT), (None, None)),
    )
    row["patient_id_root"], row["patient_id"] = chosen
    row["id_card_no"] = next((e for r, e in ids if r == ID_CARD_ROOT and e), None)
    row["patient_name"] = _name(_kid(patient, "name"))
    row["sex"] = _attr(_kid(patient, "administrativeGenderCode"), "code")
    row["birth"] = _attr(_kid(patient, "birthTime"), "value")
    row["ethnicity"] = _attr(_kid(patient, "ethnicGroupCode"), "displayName") or _attr(
        _kid(patient, "ethnicGroupCode"), "code"
    )
    tel = next(
        (t for t in (_attr(x, "value") for x in _kids(role, "telecom")) if t and "tel:" in t),
        None,
    )
    row["phone"] = tel
    addr = _kid(role, "addr")
    if addr is not None:
        street = [_text(x) for x in addr if _local(x) in ("streetAddressLine", "houseNumber")]
        row["street"] = " ".join(s for s in street if s) or None
        row["county"] = _text(_kid(addr, "county"))
        row["city"] = _text(_kid(addr, "city"))
        row["state"] = _text(_kid(addr, "state"))
        row["postcode"] = _text(_kid(addr, "postalCode"))


def parse_cda(xml: str | None) -> dict[str, Any]:
    """One document's (or fragment's) header, patient, sections and coded entries."""
    from lxml import etree

    row: dict[str, Any] = {n: None for n in PARSED.fieldNames()}
    row.update(template_ids=[], patient_ids=[], sections=[], entries=[])
    if not xml:
        row["error"] = "empty document"
        return row
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
    )
    try:
        body = xml.encode("utf-8")
        if body.lstrip().startswith(b"<?xml"):
            body = body.split(b"?>", 1)[1]
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        row["error"] = type(exc).__name__
        return row
    row["root"] = _local(root)
    if row["root"] == "ClinicalDocument":
        _header(root, row)
        _record_target(_kid(root, "recordTarget", "patientRole"), row)
    elif row["root"] == "recordTarget":
        _record_target(_kid(root, "patientRole"), row)
    row["sections"] = _sections(root)
    row["entries"] = _entries(root)
    return row


def _parse_batches(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
    for xml in batches:
        yield pd.DataFrame([parse_cda(x) for x in xml])


_parse_udf = F.pandas_udf(_parse_batches, PARSED)  # type: ignore[attr-defined]


# --- the Spark side ------------------------------------------------------------------


def _lineage() -> list[Column]:
    return [
        F.col("institution_code"),
        F.col("source_system"),
        F.col("file_sha256").alias("bronze_file_sha256"),
        F.col("record_index").cast("long").alias("bronze_record_index"),
    ]


def _vocab(system: Column) -> Column:
    pairs = [x for k, v in sorted(VOCABULARY_BY_OID.items()) for x in (F.lit(k), F.lit(v))]
    return F.coalesce(F.create_map(*pairs)[system], system)


def _pkey() -> Column:
    return patient_key(F.col("institution_code"), F.col("p.patient_id")).alias("patient_key")


def _documents(df: DataFrame) -> DataFrame:
    p = F.col("p")
    return df.where(p["root"] == "ClinicalDocument").select(
        *_lineage(),
        F.coalesce(p["document_id"], F.concat(F.lit("sha256:"), F.col("file_sha256"))).alias(
            "document_id"
        ),
        _pkey(),
        p["patient_id"].alias("patient_id"),
        p["encounter_id"].alias("encounter_id"),
        p["type_code"].alias("document_type_code"),
        p["type_system"].alias("document_type_system"),
        p["template_ids"].alias("template_ids"),
        p["title"].alias("title"),
        parse_timestamp(p["effective"]).alias("effective_at"),
        p["effective"].alias("effective_at_source"),
        p["set_id"].alias("set_id"),
        F.expr("try_cast(p.version AS INT)").alias("version_number"),
        p["confidentiality"].alias("confidentiality_code"),
        p["language"].alias("language_code"),
        p["id_card_no"].alias("id_card_no"),
        p["patient_name"].alias("patient_name"),
        p["author_id"].alias("author_id"),
        p["author_name"].alias("author_name"),
        p["custodian_code"].alias("custodian_code"),
        p["custodian_name"].alias("custodian_name"),
        p["sections"].alias("sections"),
        F.col("doc_at").alias("source_updated_at"),
        F.lit(False).alias("is_deleted"),
    )


def _patients(df: DataFrame) -> DataFrame:
    p = F.col("p")
    han = F.concat_ws("", p["street"], p["city"]).rlike(r"\p{IsHan}")
    address = F.when(
        han, F.concat_ws("", p["state"], p["city"], p["county"], p["street"])
    ).otherwise(F.concat_ws(", ", p["street"], p["city"], p["state"], p["postcode"]))
    ids = F.transform(
        p["patient_ids"], lambda x: F.struct(F.get(x, 0).alias("k"), F.get(x, 1).alias("v"))
    )
    ids = F.filter(ids, lambda x, i: ~F.exists(F.slice(ids, 1, i), lambda y: y["k"] == x["k"]))
    return df.where(p["patient_id"].isNotNull()).select(
        *_lineage(),
        _pkey(),
        p["patient_id"].alias("patient_id"),
        F.coalesce(p["document_id"], F.col("file_sha256")).alias("source_record_id"),
        F.when(F.size(ids) > 0, F.map_from_entries(ids)).alias("identifiers"),
        p["id_card_no"].alias("id_card_no"),
        id_card_validity(p["id_card_no"]).alias("id_card_valid"),
        p["patient_name"].alias("name"),
        p["sex"].alias("sex_source"),
        parse_date(p["birth"]).alias("birth_date"),
        p["birth"].alias("birth_date_source"),
        phone_digits(p["phone"]).alias("phone"),
        blank_to_null(address).alias("address"),
        p["state"].alias("address_province"),
        p["city"].alias("address_city"),
        p["county"].alias("address_county"),
        p["postcode"].alias("postcode"),
        p["ethnicity"].alias("ethnicity"),
        F.col("doc_at").alias("source_updated_at"),
        F.lit(False).alias("is_deleted"),
    )


def _header_encounters(df: DataFrame) -> DataFrame:
    p = F.col("p")
    code = F.upper(p["encounter_code"])
    klass = (
        F.when(code.isin("AMB", "O"), "outpatient")
        .when(code.isin("EMER", "E"), "emergency")
        .when(code.isin("IMP", "ACUTE", "NONAC", "I"), "inpatient")
        .when(p["patient_id_root"] == "2.16.156.10011.1.12", "inpatient")
    )
    start, end = parse_timestamp(p["encounter_low"]), parse_timestamp(p["encounter_high"])
    inpatient = klass == "inpatient"
    return df.where((p["root"] == "ClinicalDocument") & p["encounter_id"].isNotNull()).select(
        *_lineage(),
        _pkey(),
        p["patient_id"].alias("patient_id"),
        p["encounter_id"].alias("encounter_id"),
        klass.alias("encounter_class"),
        p["encounter_code"].alias("encounter_class_source"),
        F.when(end.isNotNull(), "finished").alias("status"),
        p["encounter_dept"].alias("dept_name"),
        start.alias("start_at"),
        p["encounter_low"].alias("start_at_source"),
        end.alias("end_at"),
        F.when(inpatient, start).alias("admit_at"),
        F.when(inpatient, end).alias("discharge_at"),
        F.col("doc_at").alias("source_updated_at"),
        F.lit(False).alias("is_deleted"),
    )


def _entry_rows(df: DataFrame) -> DataFrame:
    """One row per coded entry, with its document's keys."""
    p = F.col("p")
    doc_key = F.coalesce(p["document_id"], F.concat(F.lit("sha256:"), F.col("file_sha256")))
    return df.select(
        *_lineage(),
        "file_path",
        "record_index",
        "file_sha256",
        "doc_at",
        _pkey(),
        p["patient_id"].alias("patient_id"),
        p["encounter_id"].alias("doc_encounter_id"),
        doc_key.alias("doc_key"),
        F.explode(p["entries"]).alias("e"),
    ).select(
        "*",
        F.concat_ws("|", F.col("doc_key"), F.col("e.idx").cast("string")).alias("entry_key"),
        F.coalesce(F.col("e.time_low"), F.col("e.time_high")).alias("when_src"),
    )


def _common() -> list[Column | str]:
    return [
        "institution_code",
        "source_system",
        "bronze_file_sha256",
        "bronze_record_index",
        "patient_key",
        "patient_id",
        F.col("doc_encounter_id").alias("encounter_id"),
        F.coalesce(parse_timestamp(F.col("when_src")), F.col("doc_at")).alias("_t"),
        F.col("doc_at").alias("source_updated_at"),
        F.lit(False).alias("is_deleted"),
    ]


def _diagnoses(entries: DataFrame) -> DataFrame:
    e = F.col("e")
    # The value is the diagnosis (WS/T 500 DE05.01.024.00 and C-CDA problem observations,
    # whose code says only "problem" / "diagnosis").
    code, system, name = e["value_code"], e["value_system"], e["value_name"]
    dtype = F.create_map(
        *[x for k, v in sorted(DIAGNOSIS_SECTION_TYPE.items()) for x in (F.lit(k), F.lit(v))]
    )[e["section_code"]]
    # The first diagnosis entry of its section is the primary one (主要诊断 is listed first).
    first_in_section = e["first_in_section"]
    return (
        entries.where(e["kind"] == "diagnosis")
        .select(
            *_common(),
            F.col("entry_key").alias("diagnosis_id"),
            code.alias("source_code"),
            _vocab(system).alias("source_vocabulary"),
            name.alias("source_name"),
            dtype.alias("diagnosis_type"),
            first_in_section.alias("is_primary"),
            e["status"].alias("clinical_status"),
            F.coalesce(F.col("when_src"), F.col("doc_at").cast("string")).alias(
                "diagnosed_at_source"
            ),
        )
        .select("*", F.col("_t").alias("diagnosed_at"))
        .drop("_t")
    )


def _lab_results(entries: DataFrame) -> DataFrame:
    from lakehouse.silver.conform import reference_range

    e = F.col("e")
    low, high = reference_range(e["range_text"])
    value_src = F.coalesce(e["value"], e["value_name"], e["value_code"])
    return (
        entries.where(e["kind"] == "lab_result")
        .select(
            *_common(),
            F.col("entry_key").alias("result_id"),
            e["code"].alias("test_source_code"),
            _vocab(e["code_system"]).alias("test_source_vocabulary"),
            e["code_name"].alias("test_source_name"),
            e["value_type"].alias("value_type"),
            value_src.alias("value_source"),
            F.when(e["value_type"].isin("PQ", "INT", "REAL"), parse_number(e["value"])).alias(
                "value_as_number"
            ),
            e["value_unit"].alias("unit_source"),
            e["range_text"].alias("reference_range_source"),
            low.alias("reference_low"),
            high.alias("reference_high"),
            e["interpretation"].alias("abnormal_flag"),
            e["status"].alias("result_status"),
            F.col("when_src").alias("collected_at_source"),
        )
        .select("*", F.col("_t").alias("collected_at"))
        .drop("_t")
    )


def _vitals(entries: DataFrame) -> DataFrame:
    e = F.col("e")
    return (
        entries.where(e["kind"] == "vital_sign")
        .select(
            *_common(),
            F.col("entry_key").alias("vital_id"),
            e["code"].alias("source_code"),
            _vocab(e["code_system"]).alias("source_vocabulary"),
            e["code_name"].alias("source_name"),
            parse_number(e["value"]).alias("value_as_number"),
            e["value_unit"].alias("unit_source"),
            F.col("when_src").alias("measured_at_source"),
        )
        .select("*", F.col("_t").alias("measured_at"))
        .drop("_t")
    )


def _medications(entries: DataFrame) -> DataFrame:
    e = F.col("e")
    return (
        entries.where(e["kind"] == "medication_order")
        .select(
            *_common(),
            F.col("entry_key").alias("medication_order_id"),
            e["code"].alias("drug_source_code"),
            _vocab(e["code_system"]).alias("drug_source_vocabulary"),
            e["code_name"].alias("drug_source_name"),
            parse_number(e["dose"]).alias("dose"),
            e["dose_unit"].alias("dose_unit"),
            e["route"].alias("route"),
            e["frequency"].alias("frequency"),
            e["status"].alias("status"),
            e["performer_id"].alias("prescriber_id"),
            F.col("when_src").alias("ordered_at_source"),
        )
        .select("*", F.col("_t").alias("ordered_at"))
        .drop("_t")
    )


def _procedures(entries: DataFrame) -> DataFrame:
    e = F.col("e")
    return (
        entries.where(e["kind"] == "procedure")
        .select(
            *_common(),
            F.col("entry_key").alias("procedure_id"),
            e["code"].alias("source_code"),
            _vocab(e["code_system"]).alias("source_vocabulary"),
            e["code_name"].alias("source_name"),
            F.when(e["mood"].isin("INT", "RQO", "PRP", "ARQ"), F.lit("ordered"))
            .otherwise(e["status"])
            .alias("status"),
            e["performer_id"].alias("provider_id"),
            F.col("when_src").alias("performed_at_source"),
        )
        .select("*", F.col("_t").alias("performed_at"))
        .drop("_t")
    )


def _entry_encounters(entries: DataFrame) -> DataFrame:
    e = F.col("e")
    code = F.upper(e["code"])
    start, end = parse_timestamp(e["time_low"]), parse_timestamp(e["time_high"])
    return entries.where(e["kind"] == "encounter").select(
        "institution_code",
        "source_system",
        "bronze_file_sha256",
        "bronze_record_index",
        "patient_key",
        "patient_id",
        F.coalesce(e["entry_id"], F.col("entry_key")).alias("encounter_id"),
        F.when(code.isin("AMB"), "outpatient")
        .when(code.isin("EMER"), "emergency")
        .when(code.isin("IMP", "ACUTE", "NONAC"), "inpatient")
        .alias("encounter_class"),
        e["code"].alias("encounter_class_source"),
        F.when(end.isNotNull(), "finished").otherwise(e["status"]).alias("status"),
        start.alias("start_at"),
        e["time_low"].alias("start_at_source"),
        end.alias("end_at"),
        F.col("doc_at").alias("source_updated_at"),
        F.lit(False).alias("is_deleted"),
    )


def _reject(df: DataFrame, code: ErrorCode, detail: Column) -> DataFrame:
    return df.select(
        F.col("institution_code"),
        F.col("source_system"),
        F.col("file_sha256").alias("bronze_file_sha256"),
        F.col("record_index").cast("long").alias("bronze_record_index"),
        F.lit(code.id).alias("error_code"),
        F.lit(code.name).alias("error_name"),
        detail.alias("detail"),
    )


def transform_emr(bronze: DataFrame) -> SilverOutput:
    """``bronze.emr_cda_documents`` rows -> silver rows and rejects (module docstring)."""
    parsed = bronze.select(
        "institution_code",
        "source_system",
        "file_sha256",
        "record_index",
        "file_path",
        _parse_udf(F.col("raw_xml")).alias("p"),
    )
    # The UDF runs once for every output table: the parsed batch is checkpointed (lazily,
    # by the first table written) and every table reads it.
    df = parsed.select("*", parse_timestamp(F.col("p.effective")).alias("doc_at"))
    df = df.localCheckpoint(eager=False)
    ok = df.where(F.col("p.error").isNull())
    out = SilverOutput()
    out.add("silver.clinical_document", _documents(ok))
    out.add("silver.patient", _patients(ok))
    out.add("silver.encounter", _header_encounters(ok))
    entries = _entry_rows(ok)
    mapped = entries.where(F.col("e.skip_reason").isNull())
    out.add("silver.diagnosis", _diagnoses(mapped))
    out.add("silver.lab_result", _lab_results(mapped))
    out.add("silver.vital_sign", _vitals(mapped))
    out.add("silver.medication_order", _medications(mapped))
    out.add("silver.procedure", _procedures(mapped))
    out.add("silver.encounter", _entry_encounters(mapped))

    file_name = F.element_at(F.split(F.col("file_path"), "/"), -1)
    where = F.format_string("CDA record %s of %s", F.col("record_index").cast("string"), file_name)
    out.reject(
        _reject(
            df.where(F.col("p.error").isNotNull()),
            ErrorCode.SILVER_CDA_UNREADABLE,
            F.concat(where, F.lit(" could not be read in silver: "), F.col("p.error")),
        )
    )
    nothing = (
        (F.col("p.root") != "ClinicalDocument")
        & (F.size(F.col("p.entries")) == 0)
        & F.col("p.patient_id").isNull()
    )
    out.reject(
        _reject(
            ok.where(nothing),
            ErrorCode.SILVER_CDA_NOTHING_MAPPED,
            F.concat(where, F.lit(" (root element "), F.col("p.root"), F.lit(") maps to nothing")),
        )
    )
    out.reject(
        _reject(
            entries.where(F.col("e.skip_reason").isNotNull()),
            ErrorCode.SILVER_CDA_ENTRY_SKIPPED,
            F.concat(
                where,
                F.lit(": entry "),
                F.col("e.idx").cast("string"),
                F.lit(" ("),
                F.col("e.kind"),
                F.lit(") was not mapped: "),
                F.col("e.skip_reason"),
            ),
        )
    )
    return out
