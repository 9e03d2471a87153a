"""FHIR R4 resources (``bronze.fhir_resources``) -> the conformed silver tables.

Spark-native: each mapped resource type is read with ``from_json`` and an explicit,
lenient schema of only the elements silver uses (:mod:`lakehouse.silver.fhir_elements`);
numbers are read as text, so a decimal keeps the digits it was sent with and a string
where a number belongs is not a parse failure. No Python UDF.

| resourceType | silver table | record id |
|---|---|---|
| Patient | silver.patient | patient_id = Resource.id |
| Encounter | silver.encounter | encounter_id = Resource.id |
| Condition | silver.diagnosis | diagnosis_id = Resource.id |
| Observation (laboratory, or no category and a LOINC code) | silver.lab_result | result_id |
| Observation (vital-signs) | silver.vital_sign (one row per component) | vital_id |
| MedicationRequest | silver.medication_order | medication_order_id |
| Procedure | silver.procedure | procedure_id |
| Organization | silver.org | org_code |
| Practitioner | silver.provider | provider_id |
| DocumentReference (inline text/plain) | silver.note | note_id |

Other types (AllergyIntolerance, Immunization, Device, Location, PractitionerRole,
DiagnosticReport, Medication, other Observation categories) are not mapped: they are
neither rows nor rejects (:data:`MAPPED_TYPES` lists the mapped ones). Ids are the resource
ids because every FHIR reference names its target by id (``Patient/<id>``,
``urn:uuid:<id>`` in bundles). ``source_updated_at`` is ``meta.lastUpdated``, else the
bronze ``ingested_at`` (a later delivery of the same resource wins). Element-by-element
mapping: ``docs/silver.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.silver.base import SilverOutput, blank_to_null, patient_key
from lakehouse.silver.conform import id_card_validity, parse_date, parse_number, parse_timestamp
from lakehouse.silver.conform import phone_digits as _phone
from lakehouse.silver.fhir_elements import (
    DAYS_PER_UNIT,
    DRUG_SYSTEMS,
    DX_SYSTEMS,
    ENCOUNTER_CLASS,
    ENCOUNTER_STATUS,
    ERROR,
    ID_CARD_SYSTEM,
    LAB_SYSTEMS,
    LOINC,
    MAPPED_TYPES,
    PATIENT_SCOPED,
    PROC_SYSTEMS,
    RESULT_STATUS,
    SCHEMAS,
    UCUM,
    cc_code,
    cc_text,
    first_of,
    local_vocabulary,
    lookup,
    patient_ref,
    person_name,
    pick_coding,
    quantity_text,
    reference_id,
    unit_of,
)
from lakehouse.silver.member import file_name, lineage, reject_cases, sex_code

__all__ = ["MAPPED_TYPES", "observation_kind", "transform_fhir"]


# --- row helpers ----------------------------------------------------------------------
def _common(patient: Column | None = None) -> list[Column]:
    """Source, patient and lineage columns of a patient-scoped row."""
    cols = [F.col("institution_code"), F.col("source_system")]
    if patient is not None:
        cols += [
            patient_key(F.col("institution_code"), patient).alias("patient_key"),
            patient.alias("patient_id"),
        ]
    return cols


def _updated(r: Column) -> Column:
    return F.coalesce(
        parse_timestamp(r.getField("meta").getField("lastUpdated")), F.col("ingested_at")
    )


# --- per-type row builders ----------------------------------------------------------
def _patients(df: DataFrame) -> DataFrame:
    r = F.col("r")
    idents = F.filter(
        F.coalesce(r.getField("identifier"), F.array()),
        lambda i: (
            F.coalesce(i.getField("system"), cc_code(i.getField("type"))).isNotNull()
            & blank_to_null(i.getField("value")).isNotNull()
        ),
    )
    keyed = F.transform(
        idents,
        lambda i: F.struct(
            F.coalesce(i.getField("system"), cc_code(i.getField("type"))).alias("k"),
            F.trim(i.getField("value")).alias("v"),
        ),
    )
    # One entry per system (the first): map_from_entries refuses duplicate keys.
    unique = F.filter(
        keyed,
        lambda e, i: (
            F.array_position(F.transform(keyed, lambda x: x.getField("k")), e["k"]) == i + 1
        ),
    )
    identifiers = F.map_from_entries(unique)

    def ident_where(cond: Callable[[Column], Column]) -> Column:
        return first_of(F.filter(idents, cond)).getField("value")

    id_card = ident_where(lambda i: i.getField("system") == ID_CARD_SYSTEM)
    passport = ident_where(lambda i: cc_code(i.getField("type")) == "PPN")
    names = F.coalesce(r.getField("name"), F.array())
    name = F.coalesce(
        first_of(F.filter(names, lambda n: n.getField("use") == "official")), first_of(names)
    )
    phones = F.filter(
        F.coalesce(r.getField("telecom"), F.array()),
        lambda t: t.getField("system").isin("phone", "sms"),
    )
    addresses = F.coalesce(r.getField("address"), F.array())
    addr = F.coalesce(
        first_of(F.filter(addresses, lambda a: a.getField("use") == "home")), first_of(addresses)
    )
    addr_text = F.coalesce(
        blank_to_null(addr.getField("text")),
        blank_to_null(
            F.concat_ws(
                "",
                addr.getField("state"),
                addr.getField("city"),
                addr.getField("district"),
                F.array_join(F.coalesce(addr.getField("line"), F.array()), ""),
            )
        ),
    )
    pid = blank_to_null(r.getField("id"))
    return df.select(
        *_common(pid),
        pid.alias("source_record_id"),
        identifiers.alias("identifiers"),
        blank_to_null(id_card).alias("id_card_no"),
        id_card_validity(id_card).alias("id_card_valid"),
        blank_to_null(passport).alias("passport_no"),
        person_name(name).alias("name"),
        sex_code(r.getField("gender")).alias("sex_code"),
        r.getField("gender").alias("sex_source"),
        parse_date(r.getField("birthDate")).alias("birth_date"),
        r.getField("birthDate").alias("birth_date_source"),
        _phone(first_of(phones).getField("value")).alias("phone"),
        addr_text.alias("address"),
        blank_to_null(addr.getField("state")).alias("address_province"),
        blank_to_null(addr.getField("city")).alias("address_city"),
        blank_to_null(addr.getField("district")).alias("address_county"),
        blank_to_null(addr.getField("postalCode")).alias("postcode"),
        *lineage(_updated(r)),
    )


def _encounters(df: DataFrame) -> DataFrame:
    r = F.col("r")
    cls = F.upper(F.trim(r.getField("class").getField("code")))
    klass = lookup(ENCOUNTER_CLASS, cls)
    status = F.coalesce(lookup(ENCOUNTER_STATUS, r.getField("status")), r.getField("status"))
    parts = F.coalesce(r.getField("participant"), F.array())

    def typed(code: str) -> Column:
        return first_of(
            F.filter(
                parts,
                lambda p: F.exists(
                    F.coalesce(p.getField("type"), F.array()),
                    lambda t: F.exists(
                        F.coalesce(t.getField("coding"), F.array()),
                        lambda c: c.getField("code") == code,
                    ),
                ),
            )
        )

    attending = F.coalesce(typed("ATND"), typed("PPRF"), first_of(parts)).getField("individual")
    location = first_of(r.getField("location")).getField("location")
    start = r.getField("period").getField("start")
    end = r.getField("period").getField("end")
    inpatient = klass == "inpatient"
    return df.select(
        *_common(patient_ref(r)),
        F.col("resource_key").alias("encounter_id"),
        klass.alias("encounter_class"),
        r.getField("class").getField("code").alias("encounter_class_source"),
        status.alias("status"),
        F.coalesce(reference_id(location, "Location"), cc_code(r.getField("serviceType"))).alias(
            "dept_code"
        ),
        F.coalesce(
            blank_to_null(location.getField("display")), cc_text(r.getField("serviceType"))
        ).alias("dept_name"),
        reference_id(attending, "Practitioner").alias("attending_provider_id"),
        blank_to_null(attending.getField("display")).alias("attending_provider_name"),
        parse_timestamp(start).alias("start_at"),
        start.alias("start_at_source"),
        parse_timestamp(end).alias("end_at"),
        F.when(inpatient, parse_timestamp(start)).alias("admit_at"),
        F.when(inpatient, parse_timestamp(end)).alias("discharge_at"),
        *lineage(_updated(r), deleted=r.getField("status") == ERROR),
    )


def _conditions(df: DataFrame) -> DataFrame:
    r = F.col("r")
    code, vocab, name = pick_coding(r.getField("code"), DX_SYSTEMS, local_vocabulary("DX"))
    when = F.coalesce(
        r.getField("recordedDate"),
        r.getField("onsetDateTime"),
        r.getField("onsetPeriod").getField("start"),
    )
    verification = cc_code(r.getField("verificationStatus"))
    return df.select(
        *_common(patient_ref(r)),
        F.col("resource_key").alias("diagnosis_id"),
        reference_id(r.getField("encounter"), "Encounter").alias("encounter_id"),
        code.alias("source_code"),
        vocab.alias("source_vocabulary"),
        name.alias("source_name"),
        cc_code(r.getField("clinicalStatus")).alias("clinical_status"),
        parse_timestamp(when).alias("diagnosed_at"),
        when.alias("diagnosed_at_source"),
        *lineage(_updated(r), deleted=verification == ERROR),
    )


def _category_codes(r: Column) -> Column:
    return F.flatten(
        F.transform(
            F.coalesce(r.getField("category"), F.array()),
            lambda c: F.transform(
                F.coalesce(c.getField("coding"), F.array()), lambda x: x.getField("code")
            ),
        )
    )


def _has_loinc(cc: Column) -> Column:
    return F.exists(
        F.coalesce(cc.getField("coding"), F.array()),
        lambda c: c.getField("system").isin(*[s for s, _ in LAB_SYSTEMS]),
    )


def observation_kind(r: Column) -> Column:
    """lab, vital or null (not mapped) for a parsed Observation."""
    cats = _category_codes(r)
    return (
        F.when(F.array_contains(cats, "laboratory"), "lab")
        .when(F.array_contains(cats, "vital-signs"), "vital")
        .when((F.size(cats) == 0) & _has_loinc(r.getField("code")), "lab")
    )


def _labs(df: DataFrame) -> DataFrame:
    r = F.col("r")
    cc = r.getField("code")
    code, vocab, name = pick_coding(cc, LAB_SYSTEMS, local_vocabulary("LAB"))
    codings = F.coalesce(cc.getField("coding"), F.array())
    local = first_of(
        F.filter(codings, lambda c: ~F.coalesce(c.getField("system"), F.lit("")).isin(LOINC))
    )
    has_loinc = _has_loinc(cc)
    q = r.getField("valueQuantity")
    vcc = r.getField("valueCodeableConcept")
    value_type = (
        F.when(q.isNotNull(), "Quantity")
        .when(r.getField("valueString").isNotNull(), "string")
        .when(vcc.isNotNull(), "CodeableConcept")
        .when(r.getField("valueInteger").isNotNull(), "integer")
        .when(r.getField("valueBoolean").isNotNull(), "boolean")
    )
    value_source = F.coalesce(
        quantity_text(q),
        r.getField("valueString"),
        cc_text(vcc),
        r.getField("valueInteger"),
        r.getField("valueBoolean"),
    )
    number = F.coalesce(
        F.when(q.getField("comparator").isNull(), parse_number(q.getField("value"))),
        parse_number(r.getField("valueInteger")),
        F.when(r.getField("valueString").isNotNull(), parse_number(r.getField("valueString"))),
    )
    rr = first_of(r.getField("referenceRange"))
    low, high = rr.getField("low").getField("value"), rr.getField("high").getField("value")
    range_text = F.coalesce(
        blank_to_null(rr.getField("text")),
        F.when(low.isNotNull() & high.isNotNull(), F.concat(low, F.lit("-"), high))
        .when(low.isNotNull(), F.concat(F.lit(">="), low))
        .when(high.isNotNull(), F.concat(F.lit("<="), high)),
    )
    collected = F.coalesce(
        r.getField("effectiveDateTime"),
        r.getField("effectiveInstant"),
        r.getField("effectivePeriod").getField("start"),
    )
    notes = F.transform(F.coalesce(r.getField("note"), F.array()), lambda n: n.getField("text"))
    return df.select(
        *_common(patient_ref(r)),
        F.col("resource_key").alias("result_id"),
        reference_id(r.getField("encounter"), "Encounter").alias("encounter_id"),
        reference_id(first_of(r.getField("basedOn")), "ServiceRequest").alias("order_id"),
        code.alias("test_source_code"),
        vocab.alias("test_source_vocabulary"),
        name.alias("test_source_name"),
        F.when(has_loinc, local.getField("code")).alias("test_local_code"),
        F.when(has_loinc, blank_to_null(local.getField("display"))).alias("test_local_name"),
        value_type.alias("value_type"),
        value_source.alias("value_source"),
        number.alias("value_as_number"),
        F.when(q.isNotNull(), unit_of(q)).alias("unit_source"),
        range_text.alias("reference_range_source"),
        parse_number(low).alias("reference_low"),
        parse_number(high).alias("reference_high"),
        cc_code(first_of(r.getField("interpretation"))).alias("abnormal_flag"),
        F.coalesce(lookup(RESULT_STATUS, r.getField("status")), r.getField("status")).alias(
            "result_status"
        ),
        parse_timestamp(collected).alias("collected_at"),
        collected.alias("collected_at_source"),
        parse_timestamp(r.getField("issued")).alias("reported_at"),
        blank_to_null(F.array_join(notes, "\n")).alias("comment"),
        *lineage(_updated(r), deleted=r.getField("status") == ERROR),
    )


def _vitals(df: DataFrame) -> DataFrame:
    """One row per measurement: the Observation's own value, else one per component
    (blood pressure: ``vital_id`` = ``<id>|<component LOINC>``)."""
    r = F.col("r")
    own = F.struct(
        F.lit(None).cast("string").alias("suffix"),
        r.getField("code").alias("code"),
        r.getField("valueQuantity").alias("q"),
    )
    comps = F.transform(
        F.coalesce(r.getField("component"), F.array()),
        lambda c: F.struct(
            first_of(c.getField("code").getField("coding")).getField("code").alias("suffix"),
            c.getField("code").alias("code"),
            c.getField("valueQuantity").alias("q"),
        ),
    )
    items = F.when(r.getField("valueQuantity").isNull() & (F.size(comps) > 0), comps).otherwise(
        F.array(own)
    )
    x = F.col("x")
    code, vocab, name = pick_coding(x.getField("code"), LAB_SYSTEMS, local_vocabulary("LAB"))
    q = x.getField("q")
    when = F.coalesce(
        r.getField("effectiveDateTime"),
        r.getField("effectiveInstant"),
        r.getField("effectivePeriod").getField("start"),
    )
    rows = df.select("*", F.explode(items).alias("x"))
    return rows.select(
        *_common(patient_ref(r)),
        F.concat_ws("|", F.col("resource_key"), x.getField("suffix")).alias("vital_id"),
        reference_id(r.getField("encounter"), "Encounter").alias("encounter_id"),
        code.alias("source_code"),
        vocab.alias("source_vocabulary"),
        name.alias("source_name"),
        parse_number(q.getField("value")).alias("value_as_number"),
        unit_of(q).alias("unit_source"),
        F.when(q.getField("system") == UCUM, q.getField("code")).alias("unit_std"),
        parse_timestamp(when).alias("measured_at"),
        when.alias("measured_at_source"),
        *lineage(_updated(r), deleted=r.getField("status") == ERROR),
    )


def _medications(df: DataFrame) -> DataFrame:
    r = F.col("r")
    med = r.getField("medicationCodeableConcept")
    code, vocab, name = pick_coding(med, DRUG_SYSTEMS, local_vocabulary("DRUG"))
    dosage = first_of(r.getField("dosageInstruction"))
    dose = first_of(dosage.getField("doseAndRate")).getField("doseQuantity")
    timing = dosage.getField("timing")
    repeat = timing.getField("repeat")
    frequency = F.coalesce(
        cc_code(timing.getField("code")),
        blank_to_null(timing.getField("code").getField("text")),
        F.when(
            repeat.getField("frequency").isNotNull(),
            F.concat(
                repeat.getField("frequency"),
                F.lit("/"),
                F.coalesce(repeat.getField("period"), F.lit("")),
                F.coalesce(repeat.getField("periodUnit"), F.lit("")),
            ),
        ),
    )
    supply = r.getField("dispenseRequest").getField("expectedSupplyDuration")
    factor = lookup({k: str(v) for k, v in DAYS_PER_UNIT.items()}, F.lower(unit_of(supply)))
    days = F.ceil(parse_number(supply.getField("value")) * factor.cast("double"))
    authored = r.getField("authoredOn")
    return df.select(
        *_common(patient_ref(r)),
        F.col("resource_key").alias("medication_order_id"),
        reference_id(r.getField("encounter"), "Encounter").alias("encounter_id"),
        code.alias("drug_source_code"),
        vocab.alias("drug_source_vocabulary"),
        F.coalesce(
            name, blank_to_null(r.getField("medicationReference").getField("display"))
        ).alias("drug_source_name"),
        parse_number(dose.getField("value")).alias("dose"),
        unit_of(dose).alias("dose_unit"),
        cc_text(dosage.getField("route")).alias("route"),
        frequency.alias("frequency"),
        days.try_cast("int").alias("days_supply"),
        r.getField("status").alias("status"),
        reference_id(r.getField("requester"), "Practitioner").alias("prescriber_id"),
        parse_timestamp(authored).alias("ordered_at"),
        authored.alias("ordered_at_source"),
        *lineage(_updated(r), deleted=r.getField("status") == ERROR),
    )


def _procedures(df: DataFrame) -> DataFrame:
    r = F.col("r")
    code, vocab, name = pick_coding(r.getField("code"), PROC_SYSTEMS, local_vocabulary("PROC"))
    when = F.coalesce(
        r.getField("performedDateTime"), r.getField("performedPeriod").getField("start")
    )
    performer = F.coalesce(
        first_of(r.getField("performer")).getField("actor"), r.getField("recorder")
    )
    return df.select(
        *_common(patient_ref(r)),
        F.col("resource_key").alias("procedure_id"),
        reference_id(r.getField("encounter"), "Encounter").alias("encounter_id"),
        code.alias("source_code"),
        vocab.alias("source_vocabulary"),
        name.alias("source_name"),
        r.getField("status").alias("status"),
        reference_id(performer, "Practitioner").alias("provider_id"),
        parse_timestamp(when).alias("performed_at"),
        when.alias("performed_at_source"),
        *lineage(_updated(r), deleted=r.getField("status") == ERROR),
    )


def _organizations(df: DataFrame) -> DataFrame:
    r = F.col("r")
    oid = first_of(
        F.filter(
            F.coalesce(r.getField("identifier"), F.array()),
            lambda i: i.getField("value").startswith("urn:oid:"),
        )
    ).getField("value")
    return df.select(
        *_common(),
        F.col("resource_key").alias("org_code"),
        blank_to_null(r.getField("name")).alias("org_name"),
        F.regexp_replace(oid, "^urn:oid:", "").alias("org_oid"),
        cc_text(first_of(r.getField("type"))).alias("org_kind"),
        *lineage(_updated(r)),
    )


def _practitioners(df: DataFrame) -> DataFrame:
    r = F.col("r")
    names = F.coalesce(r.getField("name"), F.array())
    name = F.coalesce(
        first_of(F.filter(names, lambda n: n.getField("use") == "official")), first_of(names)
    )
    return df.select(
        *_common(),
        F.col("resource_key").alias("provider_id"),
        person_name(name).alias("provider_name"),
        cc_text(first_of(r.getField("qualification")).getField("code")).alias("title"),
        *lineage(_updated(r)),
    )


def _text_attachment(r: Column) -> Column:
    """The first inline text/plain attachment of a DocumentReference (null when none)."""
    return first_of(
        F.filter(
            F.transform(
                F.coalesce(r.getField("content"), F.array()), lambda c: c.getField("attachment")
            ),
            lambda a: (
                F.lower(F.coalesce(a.getField("contentType"), F.lit(""))).startswith("text/plain")
                & blank_to_null(a.getField("data")).isNotNull()
            ),
        )
    )


def _notes(df: DataFrame) -> DataFrame:
    r = F.col("r")
    att = _text_attachment(r)
    # decode() fails the whole job on bytes that are not UTF-8 (Spark 4): invalid sequences
    # become U+FFFD instead; the bronze raw_json keeps the original.
    text = F.make_valid_utf8(F.try_to_binary(att.getField("data"), F.lit("base64")).cast("string"))
    first_line = F.regexp_extract(text, r"^\s*([^\r\n]+)", 1)
    lang = F.lower(F.substring(att.getField("language"), 1, 2))
    when = F.coalesce(
        r.getField("date"), r.getField("context").getField("period").getField("start")
    )
    return df.select(
        *_common(patient_ref(r)),
        F.col("resource_key").alias("note_id"),
        reference_id(first_of(r.getField("context").getField("encounter")), "Encounter").alias(
            "encounter_id"
        ),
        cc_text(r.getField("type")).alias("note_type"),
        F.coalesce(
            blank_to_null(r.getField("description")),
            blank_to_null(att.getField("title")),
            blank_to_null(first_line),
        ).alias("note_title"),
        F.coalesce(
            F.when(lang.isin("zh", "en"), lang),
            F.when(text.rlike(r"[\x{4e00}-\x{9fff}]"), "zh").otherwise("en"),
        ).alias("language"),
        text.alias("note_text"),
        F.length(text).alias("char_count"),
        blank_to_null(first_of(r.getField("author")).getField("display")).alias("author_name"),
        parse_timestamp(when).alias("recorded_at"),
        when.alias("recorded_at_source"),
        *lineage(
            _updated(r),
            deleted=(r.getField("status") == ERROR) | (r.getField("docStatus") == ERROR),
        ),
    )


_BUILDERS = {
    "Patient": ("silver.patient", _patients),
    "Encounter": ("silver.encounter", _encounters),
    "Condition": ("silver.diagnosis", _conditions),
    "MedicationRequest": ("silver.medication_order", _medications),
    "Procedure": ("silver.procedure", _procedures),
    "Organization": ("silver.org", _organizations),
    "Practitioner": ("silver.provider", _practitioners),
    "DocumentReference": ("silver.note", _notes),
}


def _parsed(bronze: DataFrame, rtype: str) -> DataFrame:
    """Bronze rows of one type with the parsed resource ``r`` and its key ``resource_key``."""
    df = bronze.where(F.col("resource_type") == rtype)
    r = F.from_json(F.col("raw_json"), SCHEMAS[rtype])
    return df.select("*", r.alias("r")).select(
        "*", blank_to_null(F.coalesce(F.col("r.id"), F.col("resource_id"))).alias("resource_key")
    )


def _errors(rtype: str) -> Column:
    """The ErrorCode name that rejects a parsed resource of ``rtype``; null when it maps."""
    r = F.col("r")
    err = F.when(r.isNull(), ErrorCode.SILVER_FHIR_SHAPE.name).when(
        F.col("resource_key").isNull(), ErrorCode.SILVER_FHIR_NO_ID.name
    )
    if rtype in PATIENT_SCOPED:
        err = err.when(patient_ref(r).isNull(), ErrorCode.SILVER_FHIR_NO_PATIENT.name)
    if rtype == "Observation":
        coded = F.size(F.coalesce(r.getField("code").getField("coding"), F.array())) > 0
        err = err.when(
            (observation_kind(r) == "lab") & ~coded, ErrorCode.SILVER_FHIR_MISSING_ELEMENT.name
        )
    if rtype == "DocumentReference":
        err = err.when(_text_attachment(r).isNull(), ErrorCode.SILVER_FHIR_NO_TEXT.name)
    return err


def _rejects(bad: DataFrame, rtype: str) -> DataFrame:
    cases: dict[ErrorCode, dict[str, Column]] = {
        ErrorCode.SILVER_FHIR_SHAPE: {},
        ErrorCode.SILVER_FHIR_NO_ID: {},
        ErrorCode.SILVER_FHIR_MISSING_ELEMENT: {"column": F.lit("code.coding")},
        ErrorCode.SILVER_FHIR_NO_TEXT: {},
    }
    if rtype in PATIENT_SCOPED:
        subject = F.get_json_object(F.col("raw_json"), "$.subject")
        cases[ErrorCode.SILVER_FHIR_NO_PATIENT] = {
            "reason": F.when(subject.isNull(), "no subject").otherwise(
                "subject is not a Patient reference"
            )
        }
    return reject_cases(
        bad,
        F.col("error_name"),
        cases,
        name=F.col("resource_type"),
        count=F.col("record_index"),
        file=file_name(F.col("file_path")),
    )


def transform_fhir(bronze: DataFrame) -> SilverOutput:
    """``bronze.fhir_resources`` rows -> silver rows of every mapped type, and rejects.

    Rejected (``SilverOutput.rejects``): a resource whose JSON does not have the R4 shape
    read here (LH-SLV-024), no id (LH-SLV-020), a patient-scoped resource with no Patient
    subject (LH-SLV-021), a lab Observation with no coding (LH-SLV-022), a
    DocumentReference without inline text/plain data (LH-SLV-023). Types not in
    :data:`MAPPED_TYPES` and Observations of other categories are neither rows nor rejects.
    Needs the bronze columns resource_type, resource_id, raw_json, institution_code,
    source_system, file_path, file_sha256, record_index and ingested_at.
    """
    out = SilverOutput()
    for rtype in SCHEMAS:
        df = _parsed(bronze, rtype).withColumn("error_name", _errors(rtype))
        out.reject(_rejects(df.where(F.col("error_name").isNotNull()), rtype))
        good = df.where(F.col("error_name").isNull())
        if rtype == "Observation":
            kind = observation_kind(F.col("r"))
            out.add("silver.lab_result", _labs(good.where(kind == "lab")))
            out.add("silver.vital_sign", _vitals(good.where(kind == "vital")))
            continue
        table, build = _BUILDERS[rtype]
        out.add(table, build(good))
    return out
