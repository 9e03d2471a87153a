"""FHIR R4 elements as silver reads them: lenient ``from_json`` schemas, code systems in
order of preference, and column functions over references, codings, names and quantities.

Used by :mod:`lakehouse.silver.fhir`; no I/O, no session.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.silver.base import blank_to_null

# --- lenient R4 schemas: only the elements silver maps -------------------------------
_CODING = "struct<system:string,code:string,display:string>"
_CC = f"struct<coding:array<{_CODING}>,text:string>"
_REF = "struct<reference:string,display:string,identifier:struct<system:string,value:string>>"
_PERIOD = "struct<start:string,end:string>"
_QTY = "struct<value:string,comparator:string,unit:string,system:string,code:string>"
_META = "struct<lastUpdated:string>"
_IDENT = f"struct<system:string,value:string,type:{_CC}>"
_NAME = "struct<use:string,text:string,family:string,given:array<string>,prefix:array<string>>"

SCHEMAS = {
    "Patient": f"struct<id:string,meta:{_META},identifier:array<{_IDENT}>,"
    f"name:array<{_NAME}>,gender:string,birthDate:string,"
    "telecom:array<struct<system:string,value:string,use:string>>,"
    "address:array<struct<use:string,text:string,line:array<string>,city:string,"
    "district:string,state:string,postalCode:string,country:string>>>",
    "Encounter": f"struct<id:string,meta:{_META},status:string,class:{_CODING},"
    f"serviceType:{_CC},subject:{_REF},period:{_PERIOD},"
    f"participant:array<struct<type:array<{_CC}>,individual:{_REF}>>,"
    f"location:array<struct<location:{_REF}>>>",
    "Condition": f"struct<id:string,meta:{_META},clinicalStatus:{_CC},"
    f"verificationStatus:{_CC},category:array<{_CC}>,code:{_CC},subject:{_REF},"
    f"encounter:{_REF},onsetDateTime:string,onsetPeriod:{_PERIOD},recordedDate:string>",
    "Observation": f"struct<id:string,meta:{_META},status:string,category:array<{_CC}>,"
    f"code:{_CC},subject:{_REF},encounter:{_REF},basedOn:array<{_REF}>,"
    f"effectiveDateTime:string,effectiveInstant:string,effectivePeriod:{_PERIOD},"
    f"issued:string,valueQuantity:{_QTY},valueString:string,valueCodeableConcept:{_CC},"
    f"valueInteger:string,valueBoolean:string,interpretation:array<{_CC}>,"
    f"referenceRange:array<struct<low:{_QTY},high:{_QTY},text:string>>,"
    "note:array<struct<text:string>>,"
    f"component:array<struct<code:{_CC},valueQuantity:{_QTY},valueString:string>>>",
    "MedicationRequest": f"struct<id:string,meta:{_META},status:string,"
    f"medicationCodeableConcept:{_CC},medicationReference:{_REF},subject:{_REF},"
    f"encounter:{_REF},authoredOn:string,requester:{_REF},"
    f"dosageInstruction:array<struct<text:string,route:{_CC},"
    f"timing:struct<code:{_CC},repeat:struct<frequency:string,period:string,"
    f"periodUnit:string>>,doseAndRate:array<struct<doseQuantity:{_QTY}>>>>,"
    f"dispenseRequest:struct<expectedSupplyDuration:{_QTY}>>",
    "Procedure": f"struct<id:string,meta:{_META},status:string,code:{_CC},subject:{_REF},"
    f"encounter:{_REF},performedDateTime:string,performedPeriod:{_PERIOD},"
    f"performer:array<struct<actor:{_REF}>>,recorder:{_REF}>",
    "Organization": f"struct<id:string,meta:{_META},identifier:array<{_IDENT}>,"
    f"name:string,type:array<{_CC}>>",
    "Practitioner": f"struct<id:string,meta:{_META},name:array<{_NAME}>,"
    f"qualification:array<struct<code:{_CC}>>>",
    "DocumentReference": f"struct<id:string,meta:{_META},status:string,docStatus:string,"
    f"type:{_CC},subject:{_REF},date:string,author:array<{_REF}>,description:string,"
    "content:array<struct<attachment:struct<contentType:string,language:string,"
    "data:string,title:string>>>,"
    f"context:struct<encounter:array<{_REF}>,period:{_PERIOD}>>",
}
#: Resource types this transform maps, and the silver table each goes to.
MAPPED_TYPES = {
    "Patient": "silver.patient",
    "Encounter": "silver.encounter",
    "Condition": "silver.diagnosis",
    "Observation": "silver.lab_result / silver.vital_sign",
    "MedicationRequest": "silver.medication_order",
    "Procedure": "silver.procedure",
    "Organization": "silver.org",
    "Practitioner": "silver.provider",
    "DocumentReference": "silver.note",
}
#: Types whose rows belong to a patient: no resolvable subject -> LH-SLV-021.
PATIENT_SCOPED = (
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Procedure",
    "DocumentReference",
)

# --- code systems: (system URI, vocabulary id), in order of preference ---------------
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ID_CARD_SYSTEM = "urn:oid:2.16.156.10011.1.3"
DX_SYSTEMS = (
    ("http://hl7.org/fhir/sid/icd-10", "ICD10"),
    ("http://hl7.org/fhir/sid/icd-10-cn", "ICD10"),
    ("urn:oid:2.16.156.10011.2.3.3.11", "ICD10"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "ICD10CM"),
    ("urn:oid:2.16.840.1.113883.6.90", "ICD10CM"),
    ("http://snomed.info/sct", "SNOMED"),
)
LAB_SYSTEMS = ((LOINC, "LOINC"), ("urn:oid:2.16.840.1.113883.6.1", "LOINC"))
DRUG_SYSTEMS = (
    ("http://www.whocc.no/atc", "ATC"),
    ("urn:oid:2.16.840.1.113883.6.73", "ATC"),
    ("http://www.nlm.nih.gov/research/umls/rxnorm", "RXNORM"),
)
PROC_SYSTEMS = (
    ("http://hl7.org/fhir/sid/icd-9-cm", "ICD9CM3"),
    ("urn:oid:2.16.156.10011.2.3.3.12", "ICD9CM3"),
    ("http://snomed.info/sct", "SNOMED"),
    ("http://www.ama-assn.org/go/cpt", "CPT4"),
)
ENCOUNTER_CLASS = {
    "AMB": "outpatient",
    "VR": "outpatient",
    "HH": "outpatient",
    "FLD": "outpatient",
    "EMER": "emergency",
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "SS": "inpatient",
    "OBSENC": "inpatient",
    "PRENC": "inpatient",
}
ENCOUNTER_STATUS = {
    "arrived": "in-progress",
    "triaged": "in-progress",
    "onleave": "in-progress",
    "entered-in-error": "cancelled",
}
RESULT_STATUS = {
    "final": "F",
    "corrected": "C",
    "amended": "C",
    "preliminary": "P",
    "registered": "I",
    "cancelled": "X",
    "entered-in-error": "W",
}
DAYS_PER_UNIT = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7}
ERROR = "entered-in-error"


def lookup(mapping: dict[str, str], key: Column) -> Column:
    return F.try_element_at(F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv]), key)


def reference_id(ref: Column, rtype: str) -> Column:
    """The target id of a Reference to ``rtype``; null when it names another type.

    ``Patient/<id>`` (also absolute and ``/_history/<v>`` forms) -> ``<id>``;
    ``urn:uuid:<id>`` (bundles: Synthea's fullUrl is ``urn:uuid:`` + the resource id) ->
    ``<id>``; ``Patient?identifier=<system>|<value>`` (conditional, as in bulk exports) ->
    ``<value>``; a logical reference (``identifier`` only) -> its value.
    """
    text = F.trim(ref.getField("reference"))
    literal = F.regexp_extract(text, rf"^(?:.*/)?{rtype}/([^/?#]+)(?:/_history/.*)?$", 1)
    uuid = F.regexp_extract(text, r"^urn:uuid:(.+)$", 1)
    conditional = F.regexp_extract(text, rf"^{rtype}\?identifier=(?:[^|]*\|)?(.+)$", 1)
    return F.coalesce(
        F.when(literal != "", literal),
        F.when(uuid != "", uuid),
        F.when(conditional != "", conditional),
        F.when(text.isNull(), blank_to_null(ref.getField("identifier").getField("value"))),
    )


def pick_coding(
    cc: Column, prefs: Sequence[tuple[str, str]], local: Column
) -> tuple[Column, Column, Column]:
    """(code, vocabulary, name) of a CodeableConcept: the first coding of the first preferred
    system in ``prefs`` order; else its first coding with vocabulary ``local``; the name is
    the coding's display, else the concept's text."""
    codings = F.coalesce(cc.getField("coding"), F.array())

    def of_system(system: str) -> Column:
        return first_of(F.filter(codings, lambda c: c.getField("system") == system))

    options = [
        F.struct(
            of_system(system).getField("code").alias("code"),
            of_system(system).getField("display").alias("display"),
            F.lit(vocab).alias("vocab"),
        )
        for system, vocab in prefs
    ]
    first = first_of(codings)
    fallback = F.struct(
        first.getField("code").alias("code"),
        first.getField("display").alias("display"),
        local.alias("vocab"),
    )
    chosen = F.coalesce(
        *[F.when(o.getField("code").isNotNull(), o) for o in options],
        F.when(first.getField("code").isNotNull(), fallback),
    )
    return (
        chosen.getField("code"),
        chosen.getField("vocab"),
        F.coalesce(blank_to_null(chosen.getField("display")), blank_to_null(cc.getField("text"))),
    )


def cc_text(cc: Column) -> Column:
    """Text of a CodeableConcept: text, else the first coding's display, else its code."""
    first = first_of(cc.getField("coding"))
    return F.coalesce(
        blank_to_null(cc.getField("text")),
        blank_to_null(first.getField("display")),
        blank_to_null(first.getField("code")),
    )


def cc_code(cc: Column) -> Column:
    return first_of(cc.getField("coding")).getField("code")


def local_vocabulary(kind: str) -> Column:
    return F.concat(F.lit("LOCAL:"), F.col("institution_code"), F.lit(f":{kind}"))


def first_of(arr: Column) -> Column:
    return F.try_element_at(arr, F.lit(1))


def person_name(name: Column) -> Column:
    """HumanName -> text: ``text``, else family + given (no space when the family name is
    Chinese, ``given family`` otherwise)."""
    given = F.array_join(F.coalesce(name.getField("given"), F.array()), " ")
    family = blank_to_null(name.getField("family"))
    chinese = family.rlike(r"[\x{4e00}-\x{9fff}]")
    composed = F.when(chinese, F.concat_ws("", family, F.array_join(name.getField("given"), "")))
    return F.coalesce(
        blank_to_null(name.getField("text")),
        composed,
        blank_to_null(F.concat_ws(" ", blank_to_null(given), family)),
    )


def patient_ref(r: Column) -> Column:
    return reference_id(r.getField("subject"), "Patient")


def quantity_text(q: Column) -> Column:
    return F.concat(F.coalesce(q.getField("comparator"), F.lit("")), q.getField("value"))


def unit_of(q: Column) -> Column:
    """The unit as sent: the Quantity's ``unit`` (what HL7 and CSV sources send too), else
    its coded form (``code``, UCUM when ``system`` is UCUM)."""
    return F.coalesce(blank_to_null(q.getField("unit")), blank_to_null(q.getField("code")))
