"""HL7 v2 (LIS) -> silver: patient, encounter, encounter_transfer, lab_result, vital_sign.

Spark-native throughout (no UDF): a message is split into segments (CR, LF or CRLF), each
segment into fields on the message's own field separator (MSH-1), fields into repetitions,
components and subcomponents on its own MSH-2 encoding characters, and text is unescaped
after splitting (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, ``\\Xhh..\\`` as UTF-8 bytes, ``\\.br\\`` and
``\\.sp\\`` as line breaks; highlighting and character-set escapes dropped; an escape this
module does not know is kept verbatim). Segments stay in one array per message, so OBX ->
OBR/ORC and NTE -> OBX are found with array functions: no shuffle, no join.

What each silver table gets is in ``docs/silver.md`` (section "HL7 v2 (LIS)"). Outcomes of a
message: rows, and/or rejects (``LH-SLV-001..004``): no patient id (the whole message),
an unreadable MSH-7 (the whole message: its versions cannot be ordered), an OBX without
OBX-3 (that result only), no PID at all (ACK, MFN, queries: counted and skipped).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import ErrorCode
from lakehouse.silver.base import SilverOutput, blank_to_null, patient_key
from lakehouse.silver.conform import (
    id_card_validity,
    parse_date,
    parse_number,
    parse_timestamp,
    phone_digits,
    reference_range,
)

#: LOINC codes of vital signs: OBX with one of these go to silver.vital_sign, not lab_result.
VITAL_LOINC = frozenset(
    {
        "8310-5",  # body temperature
        "8331-1",  # oral temperature
        "8867-4",  # heart rate
        "9279-1",  # respiratory rate
        "8480-6",  # systolic blood pressure
        "8462-4",  # diastolic blood pressure
        "8478-0",  # mean blood pressure
        "2708-6",  # oxygen saturation in arterial blood
        "59408-5",  # oxygen saturation by pulse oximetry
        "29463-7",  # body weight
        "3141-9",  # body weight measured
        "8302-2",  # body height
        "39156-5",  # body mass index
        "8287-5",  # head occipital-frontal circumference
        "9843-4",  # head circumference
    }
)
#: ADT events that cancel the encounter (A11 cancel admit/visit, A38 cancel pre-admit).
CANCEL_EVENTS = ("A11", "A38")
#: One microsecond: a corrected result (OBX-11 C) sorts after the final one it corrects
#: even when both messages carry the same MSH-7 (second precision).
_CORRECTION_EPSILON = "INTERVAL 0.000001 SECONDS"
_BIG = 1 << 30


# --- delimiters and escapes ------------------------------------------------------------


def _q(c: Column) -> Column:
    """A literal (regex-quoted) delimiter."""
    return F.concat(F.lit("\\Q"), c, F.lit("\\E"))


def _delims(bronze: DataFrame) -> Column:
    """Field separator and MSH-2 encoding characters of each message, as a struct."""
    enc = F.coalesce(F.col("encoding_characters"), F.lit("^~\\&"))
    return F.struct(
        F.coalesce(F.col("field_separator"), F.lit("|")).alias("fs"),
        F.substring(enc, 1, 1).alias("comp"),
        F.substring(enc, 2, 1).alias("rep"),
        F.substring(enc, 3, 1).alias("esc"),
        F.substring(enc, 4, 1).alias("sub"),
    )


def unescape(text: Column, d: Column) -> Column:
    """HL7 v2 text with its escape sequences decoded (see the module docstring).

    The text is tokenized left to right (escape sequence | run of other characters | a
    lone escape character), so ``\\E\\T\\E\\`` is ``\\T\\`` and never ``&``.
    """
    e = d["esc"]
    qe = _q(e)
    not_e = F.concat(F.lit("(?:(?!"), qe, F.lit(")[\\s\\S])"))
    pattern = F.concat(qe, not_e, F.lit("*"), qe, F.lit("|"), not_e, F.lit("+|"), qe)
    tokens = F.regexp_extract_all(text, pattern, 0)

    def one(t: Column) -> Column:
        inner = F.substring(t, 2, F.length(t) - 2)
        is_seq = (F.length(t) >= 2) & t.startswith(e) & t.endswith(e)
        hex_ = F.substring(inner, 2, _BIG)
        hex_bytes = F.unhex(hex_)
        return F.when(~is_seq, t).otherwise(
            F.when(inner == "F", d["fs"])
            .when(inner == "S", d["comp"])
            .when(inner == "T", d["sub"])
            .when(inner == "R", d["rep"])
            .when(inner == "E", e)
            .when(inner == ".br", F.lit("\n"))
            .when(inner.isin("H", "N") | inner.rlike(r"^\.(in|ti|sk|ce|fi|nf)"), F.lit(""))
            .when(inner.rlike(r"^\.sp\s*\d*$"), F.lit("\n"))
            .when(
                inner.rlike("^X(?:[0-9A-Fa-f]{2})+$"),
                F.when(
                    F.call_function("is_valid_utf8", hex_bytes.cast("string")),
                    F.decode(hex_bytes, "UTF-8"),
                ).otherwise(F.decode(hex_bytes, "ISO-8859-1")),
            )
            .when(inner.rlike("^[CM][0-9A-Fa-f]+$"), F.lit(""))
            .otherwise(t)
        )

    decoded = F.array_join(F.transform(tokens, one), "")
    return F.when((e == "") | (F.instr(text, e) == 0), text).otherwise(decoded)


def _split(text: Column, delim: Column) -> Column:
    return F.split(text, _q(delim))


def _join(arr: Column, delim: Column) -> Column:
    return F.call_function("array_join", arr, delim)


def _parse_field(field: Column, d: Column) -> Column:
    """A raw field -> repetitions -> components -> subcomponents, each one unescaped.

    Splitting comes first and unescaping last, so an escaped delimiter (``\\S\\``) stays
    inside its component. Parsed once per segment: every accessor below is a plain ``get``.
    """
    return F.transform(
        _split(field, d["rep"]),
        lambda r: F.transform(
            _split(r, d["comp"]),
            lambda c: F.transform(_split(c, d["sub"]), lambda s: unescape(s, d)),
        ),
    )


def _field(seg: Column, n: int) -> Column:
    """SEG-n, parsed (null when the segment is absent or shorter)."""
    return F.get(seg["f"], n)


def _rep(field: Column, i: int = 0) -> Column:
    """The i-th (0-based) repetition of a parsed field."""
    return F.get(field, i)


def _comp(rep: Column, n: int, *, first_sub: bool = False) -> Column:
    """Component n (1-based) of one repetition, blank -> null.

    ``first_sub`` keeps only the first subcomponent (an HD namespace id, an FN surname);
    otherwise subcomponents are joined with the message's subcomponent separator.
    """
    subs = F.get(rep, n - 1)
    text = F.get(subs, 0) if first_sub else _join(subs, F.col("d")["sub"])
    return blank_to_null(text)


def _text(field: Column, *, sep: str = "\n") -> Column:
    """A whole field as text: components and subcomponents joined with the message's own
    separators, repetitions with ``sep``; blank -> null."""
    d = F.col("d")
    reps = F.transform(
        field,
        lambda r: _join(F.transform(r, lambda c: _join(c, d["sub"])), d["comp"]),
    )
    return blank_to_null(F.array_join(reps, sep))


def _person_name(value: Column, first: int = 1) -> Column:
    """XPN/XCN name: family+given joined as Chinese names are, else with spaces.

    ``first`` is the component of the family name (1 for XPN, 2 for XCN).
    """
    family = _comp(value, first, first_sub=True)
    given = _comp(value, first + 1)
    middle = _comp(value, first + 2)
    han = F.concat_ws("", family, given).rlike(r"\p{IsHan}")
    return blank_to_null(
        F.when(han, F.concat_ws("", family, given, middle)).otherwise(
            F.concat_ws(" ", family, given, middle)
        )
    )


# --- segments ------------------------------------------------------------------------


def _segments(bronze: DataFrame) -> DataFrame:
    """One row per message: lineage, delimiters, MSH fields and ``segs`` (idx, name, f).

    ``f`` holds the fields so that ``f[n]`` is SEG-n for every segment, MSH included (its
    MSH-1 is the separator itself). ``grp`` is the index of the last OBR at or before the
    segment, ``owner`` that of the last non-NTE segment (the one an NTE comments on).
    """
    d = F.col("d")
    lines = F.filter(F.split(F.col("raw_message"), r"\r\n|\r|\n"), lambda s: F.trim(s) != "")
    df = bronze.select(
        "file_sha256",
        "record_index",
        "source_system",
        "institution_code",
        "file_path",
        "message_datetime",
        "message_code",
        "trigger_event",
        "control_id",
        "version_id",
        _delims(bronze).alias("d"),
        lines.alias("lines"),
    )
    n = F.size(F.col("lines"))

    def seg(i: Column) -> Column:
        line = F.get(F.col("lines"), i)
        name = F.substring(line, 1, 3)
        raw = _split(line, d["fs"])
        fields = F.when(
            name == "MSH",
            F.concat(F.array(F.lit("MSH"), d["fs"]), F.slice(raw, 2, _BIG)),
        ).otherwise(raw)
        parsed = F.transform(fields, lambda f: _parse_field(f, d))
        return F.struct(i.alias("idx"), name.alias("name"), parsed.alias("f"))

    segs = F.transform(F.sequence(F.lit(0), F.greatest(n - 1, F.lit(0))), seg)
    df = df.select("*", F.when(n > 0, segs).otherwise(F.array()).alias("segs0")).drop("lines")

    def annotate(s: Column) -> Column:
        before = F.filter(F.col("segs0"), lambda o: o["idx"] <= s["idx"])
        grp = F.array_max(F.transform(F.filter(before, lambda o: o["name"] == "OBR"), _idx))
        owner = F.array_max(F.transform(F.filter(before, lambda o: o["name"] != "NTE"), _idx))
        return F.struct(
            s["idx"].alias("idx"),
            s["name"].alias("name"),
            s["f"].alias("f"),
            F.coalesce(grp, F.lit(-1)).alias("grp"),
            owner.alias("owner"),
        )

    df = df.select("*", F.transform("segs0", annotate).alias("segs")).drop("segs0")
    first = {name: _first_segment(name) for name in ("PID", "PV1", "EVN", "ZPI")}
    return df.select("*", *[c.alias(k.lower()) for k, c in first.items()])


def _first_segment(name: str) -> Column:
    return F.get(F.filter("segs", lambda s: s["name"] == name), 0)


def _idx(s: Column) -> Column:
    return s["idx"]


def _lineage() -> list[Column]:
    return [
        F.col("institution_code"),
        F.col("source_system"),
        F.col("file_sha256").alias("bronze_file_sha256"),
        F.col("record_index").cast("long").alias("bronze_record_index"),
    ]


# --- patient ---------------------------------------------------------------------------


def _patient_ids(df: DataFrame) -> DataFrame:
    """PID-3 repetitions, the patient id and the message time, per message."""
    pid3 = F.coalesce(_field(F.col("pid"), 3), F.array())
    reps = F.transform(
        pid3,
        lambda r: F.struct(
            _comp(r, 1).alias("id"),
            F.coalesce(_comp(r, 4, first_sub=True), _comp(r, 4)).alias("authority"),
            _comp(r, 5).alias("type"),
        ),
    )
    reps = F.filter(reps, lambda r: r["id"].isNotNull())
    mr = F.get(F.filter(reps, lambda r: F.upper(r["type"]) == "MR"), 0)["id"]
    pid2 = _comp(_rep(_field(F.col("pid"), 2)), 1)
    return df.select(
        "*",
        reps.alias("pid3"),
        F.coalesce(mr, F.get(reps, 0)["id"], pid2).alias("patient_id"),
        parse_timestamp(F.col("message_datetime")).alias("msg_at"),
    )


def _patients(df: DataFrame) -> DataFrame:
    pid = F.col("pid")
    keyed = F.transform(
        F.col("pid3"),
        lambda r: F.struct(
            F.concat_ws(
                "^", F.coalesce(r["authority"], F.lit("")), F.coalesce(r["type"], F.lit(""))
            ).alias("key"),
            r["id"].alias("value"),
        ),
    )
    # map_from_entries refuses duplicate keys: keep the first repetition of each key.
    unique = F.filter(
        keyed,
        lambda x, i: ~F.exists(F.slice(keyed, 1, i), lambda y: y["key"] == x["key"]),
    )

    def typed(kind: str) -> Column:
        return F.get(F.filter("pid3", lambda r: F.upper(r["type"]) == kind), 0)["id"]

    addr = _rep(_field(pid, 11))
    phone = _rep(_field(pid, 13))
    ethnic = _rep(_field(pid, 22))
    # Parts first, as columns: the derived values below refer to each part several times,
    # and columns keep the generated code small (an expression would be copied each time).
    parts = df.where(F.col("pid").isNotNull()).select(
        "*",
        F.when(F.size(unique) > 0, F.map_from_entries(unique)).alias("_ids"),
        typed("NNCHN").alias("_id_card"),
        typed("PPN").alias("_passport"),
        _person_name(_rep(_field(pid, 5))).alias("_name"),
        _comp(_rep(_field(pid, 7)), 1).alias("_birth"),
        _comp(_rep(_field(pid, 8)), 1).alias("_sex"),
        F.coalesce(_comp(phone, 1), F.concat_ws("", _comp(phone, 6), _comp(phone, 7))).alias(
            "_phone"
        ),
        _comp(addr, 1, first_sub=True).alias("_street"),
        _comp(addr, 2).alias("_other"),
        _comp(addr, 3).alias("_city"),
        _comp(addr, 4).alias("_province"),
        _comp(addr, 5).alias("_postcode"),
        _comp(addr, 9).alias("_county"),
        F.coalesce(_comp(ethnic, 2), _comp(ethnic, 1)).alias("_ethnicity"),
    )
    street, other, city = F.col("_street"), F.col("_other"), F.col("_city")
    province, postcode, county = F.col("_province"), F.col("_postcode"), F.col("_county")
    han = F.concat_ws("", street, city, province).rlike(r"\p{IsHan}")
    address = F.when(han, F.concat_ws("", province, city, county, street, other)).otherwise(
        F.concat_ws(", ", street, other, city, province, postcode)
    )
    return parts.select(
        *_lineage(),
        patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
        F.col("patient_id"),
        F.col("control_id").alias("source_record_id"),
        F.col("_ids").alias("identifiers"),
        F.col("_id_card").alias("id_card_no"),
        id_card_validity(F.col("_id_card")).alias("id_card_valid"),
        F.col("_passport").alias("passport_no"),
        F.col("_name").alias("name"),
        F.col("_sex").alias("sex_source"),
        parse_date(F.col("_birth")).alias("birth_date"),
        F.col("_birth").alias("birth_date_source"),
        phone_digits(F.col("_phone")).alias("phone"),
        blank_to_null(address).alias("address"),
        province.alias("address_province"),
        city.alias("address_city"),
        county.alias("address_county"),
        postcode.alias("postcode"),
        F.col("_ethnicity").alias("ethnicity"),
        # ZPI (site Z-segment): ZPI-2 insurance type, ZPI-3 insurance number.
        _text(_field(F.col("zpi"), 2)).alias("insurance_type"),
        _text(_field(F.col("zpi"), 3)).alias("insurance_no"),
        F.col("msg_at").alias("source_updated_at"),
        (F.coalesce(F.col("trigger_event"), F.lit("")) == "A29").alias("is_deleted"),
    )


# --- encounters ------------------------------------------------------------------------


def _event_time_text(d: Column) -> Column:
    """EVN-6 (event occurred), else EVN-2 (recorded), else MSH-7: as written."""
    evn = F.col("evn")
    return F.coalesce(
        _comp(_rep(_field(evn, 6)), 1), _comp(_rep(_field(evn, 2)), 1), F.col("message_datetime")
    )


def _encounters(df: DataFrame) -> DataFrame:
    d, pv1 = F.col("d"), F.col("pv1")
    trigger = F.coalesce(F.upper(F.col("trigger_event")), F.lit(""))
    is_adt = F.col("message_code") == "ADT"
    loc = _rep(_field(pv1, 3))
    doctor = _rep(_field(pv1, 7))
    visit = _comp(_rep(_field(pv1, 19)), 1)
    # Step 1, as columns (each is used several times below; see _patients).
    step = df.where(pv1.isNotNull()).select(
        "*",
        visit.alias("_visit"),
        _comp(_rep(_field(pv1, 2)), 1).alias("_class"),
        _comp(_rep(_field(pv1, 44)), 1).alias("_start_src"),
        parse_timestamp(_comp(_rep(_field(pv1, 45)), 1)).alias("_discharge"),
        parse_timestamp(_event_time_text(d)).alias("_event_at"),
    )
    step = step.where(F.col("_visit").isNotNull()).select(
        "*", parse_timestamp(F.col("_start_src")).alias("_start")
    )
    step = step.select(
        "*",
        F.when(trigger == "A13", F.lit(None).cast("timestamp"))
        .when(is_adt & (trigger == "A03"), F.coalesce(F.col("_discharge"), F.col("_event_at")))
        .otherwise(F.col("_discharge"))
        .alias("_end"),
    )
    klass_src, start, end = F.col("_class"), F.col("_start"), F.col("_end")
    klass = (
        F.when(F.upper(klass_src) == "O", "outpatient")
        .when(F.upper(klass_src) == "E", "emergency")
        .when(F.upper(klass_src) == "I", "inpatient")
    )
    status = (
        F.when(is_adt & trigger.isin(*CANCEL_EVENTS), "cancelled")
        .when(is_adt & (trigger == "A13"), "in-progress")
        .when(end.isNotNull(), "finished")
        .when(is_adt & trigger.isin("A01", "A02", "A04", "A06", "A07", "A08", "A12"), "in-progress")
        .when(is_adt & (trigger == "A05"), "planned")
    )
    inpatient = F.upper(klass_src) == "I"
    return step.select(
        *_lineage(),
        patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
        F.col("patient_id"),
        F.col("_visit").alias("encounter_id"),
        klass.alias("encounter_class"),
        klass_src.alias("encounter_class_source"),
        status.alias("status"),
        F.coalesce(_comp(loc, 1), _comp(_rep(_field(pv1, 10)), 1)).alias("dept_code"),
        _comp(loc, 9).alias("dept_name"),
        _comp(doctor, 1).alias("attending_provider_id"),
        _person_name(doctor, first=2).alias("attending_provider_name"),
        start.alias("start_at"),
        F.col("_start_src").alias("start_at_source"),
        end.alias("end_at"),
        F.when(inpatient, start).alias("admit_at"),
        F.when(inpatient, end).alias("discharge_at"),
        F.coalesce(_comp(loc, 3), _comp(loc, 2)).alias("bed_no"),
        F.col("msg_at").alias("source_updated_at"),
        (is_adt & trigger.isin(*CANCEL_EVENTS)).alias("is_deleted"),
    )


def _transfers(df: DataFrame) -> DataFrame:
    """A02 transfers (A12, cancel transfer, is the same transfer deleted)."""
    d, pv1 = F.col("d"), F.col("pv1")
    trigger = F.coalesce(F.upper(F.col("trigger_event")), F.lit(""))
    at_src = _event_time_text(d)
    visit = _comp(_rep(_field(pv1, 19)), 1)
    loc = _rep(_field(pv1, 3))
    return df.where(
        (F.col("message_code") == "ADT") & trigger.isin("A02", "A12") & pv1.isNotNull()
    ).select(
        *_lineage(),
        F.when(visit.isNotNull(), F.concat_ws("|", visit, at_src))
        .otherwise(F.col("control_id"))
        .alias("transfer_id"),
        patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
        F.col("patient_id"),
        visit.alias("encounter_id"),
        parse_timestamp(at_src).alias("transfer_at"),
        at_src.alias("transfer_at_source"),
        _comp(_rep(_field(pv1, 6)), 1).alias("from_dept_code"),
        _comp(loc, 1).alias("to_dept_code"),
        F.coalesce(_comp(loc, 3), _comp(loc, 2)).alias("bed_no"),
        F.col("msg_at").alias("source_updated_at"),
        (trigger == "A12").alias("is_deleted"),
    )


# --- observations ----------------------------------------------------------------------


def _observations(df: DataFrame) -> DataFrame:
    """One row per OBX with its OBR/ORC context and NTE comments (exploded; no shuffle)."""
    obx_list = F.filter("segs", lambda s: s["name"] == "OBX")
    df = df.select("*", F.posexplode(obx_list).alias("obx_pos", "obx"))
    obx = F.col("obx")
    obr = F.get(F.filter("segs", lambda s: s["idx"] == obx["grp"]), 0)
    orc = F.try_element_at(
        F.filter("segs", lambda s: (s["name"] == "ORC") & (s["idx"] < obx["idx"])), F.lit(-1)
    )
    notes = F.filter("segs", lambda s: (s["name"] == "NTE") & (s["owner"] == obx["idx"]))
    comment = F.array_join(F.transform(notes, lambda s: _text(_field(s, 3))), "\n")
    return df.select(
        "*",
        obr.alias("obr"),
        orc.alias("orc"),
        blank_to_null(comment).alias("comment"),
    )


def _results(obs: DataFrame) -> DataFrame:
    """OBX -> the columns lab_result and vital_sign share (plus routing)."""
    obx, obr, orc = F.col("obx"), F.col("obr"), F.col("orc")
    ident = _rep(_field(obx, 3))
    value_raw = _field(obx, 5)
    sn = _rep(value_raw)
    # Step 1: the parts, as columns (each is used several times below; see _patients).
    obs = obs.select(
        "*",
        *[_comp(ident, n).alias(f"_c{n}") for n in range(1, 7)],
        F.coalesce(
            _comp(_rep(_field(obr, 3)), 1),
            _comp(_rep(_field(orc, 3)), 1),
            _comp(_rep(_field(obr, 2)), 1),
            _comp(_rep(_field(orc, 2)), 1),
            F.col("control_id"),
        ).alias("_order"),
        _comp(_rep(_field(obx, 4)), 1).alias("_sub_id"),
        F.coalesce(_comp(_rep(_field(obx, 1)), 1), (F.col("obx_pos") + 1).cast("string")).alias(
            "_set_id"
        ),
        F.upper(_comp(_rep(_field(obx, 11)), 1)).alias("_status"),
        F.upper(_comp(_rep(_field(obx, 2)), 1)).alias("_vtype"),
        _text(value_raw).alias("_value"),
        F.when(
            F.coalesce(_comp(sn, 1), F.lit("=")).isin("=", "")
            & _comp(sn, 3).isNull()
            & _comp(sn, 4).isNull(),
            _comp(sn, 2),
        ).alias("_sn_number"),
        F.coalesce(_comp(_rep(_field(obx, 14)), 1), _comp(_rep(_field(obr, 7)), 1)).alias(
            "_collected_src"
        ),
        F.coalesce(_comp(_rep(_field(obr, 22)), 1), F.col("message_datetime")).alias(
            "_reported_src"
        ),
    )
    c1, c2, c3, c4, c5, c6 = (F.col(f"_c{n}") for n in range(1, 7))
    sub_id, status, vtype = F.col("_sub_id"), F.col("_status"), F.col("_vtype")
    alt_ln = F.coalesce((F.upper(c6) == "LN") & c4.isNotNull(), F.lit(False))
    primary_ln = F.coalesce(F.upper(c3) == "LN", F.lit(False))
    loinc = F.when(alt_ln, c4).when(primary_ln, c1)
    # Two OBX of one order with the same code and no sub-id (OBX-4) would share a result
    # id: such twins are told apart by their set id (OBX-1).
    twins = (
        F.size(
            F.filter(
                "segs",
                lambda s: (
                    (s["name"] == "OBX")
                    & (s["grp"] == obx["grp"])
                    & _comp(_rep(_field(s, 3)), 1).eqNullSafe(c1)
                    & _comp(_rep(_field(s, 4)), 1).eqNullSafe(sub_id)
                ),
            )
        )
        > 1
    )
    number = F.when(vtype == "NM", parse_number(F.col("_value"))).when(
        vtype == "SN", parse_number(F.col("_sn_number"))
    )
    updated = F.when(status == "C", F.col("msg_at") + F.expr(_CORRECTION_EPSILON)).otherwise(
        F.col("msg_at")
    )
    local_vocab = F.concat(F.lit("LOCAL:"), F.col("institution_code"), F.lit(":LAB"))
    return obs.select(
        "*",
        c1.alias("obx_code"),
        F.concat_ws(
            "|", F.col("_order"), c1, sub_id, F.when(twins, F.concat(F.lit("#"), F.col("_set_id")))
        ).alias("result_id"),
        F.col("_order").alias("order_id"),
        _comp(_rep(_field(obr, 4)), 1).alias("panel_code"),
        _comp(_rep(_field(obr, 4)), 2).alias("panel_name"),
        F.coalesce(loinc, c1).alias("code"),
        F.when(loinc.isNotNull(), F.lit("LOINC")).otherwise(local_vocab).alias("vocabulary"),
        F.when(alt_ln, c5).otherwise(c2).alias("code_name"),
        F.when(~primary_ln, c1).alias("local_code"),
        F.when(~primary_ln, c2).alias("local_name"),
        vtype.alias("value_type"),
        F.col("_value").alias("value_source"),
        number.alias("value_as_number"),
        _comp(_rep(_field(obx, 6)), 1).alias("unit_source"),
        _text(_field(obx, 7)).alias("reference_range_source"),
        _comp(_rep(_field(obx, 8)), 1).alias("abnormal_flag"),
        status.alias("result_status"),
        parse_timestamp(F.col("_collected_src")).alias("collected_at"),
        F.col("_collected_src").alias("collected_at_source"),
        parse_timestamp(F.col("_reported_src")).alias("reported_at"),
        updated.alias("updated_at"),
        F.coalesce(status.isin("D", "W"), F.lit(False)).alias("deleted"),
    )


def _lab_rows(res: DataFrame) -> DataFrame:
    low, high = reference_range(F.col("reference_range_source"))
    return res.select(
        *_lineage(),
        "result_id",
        patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
        "patient_id",
        _comp(_rep(_field(F.col("pv1"), 19)), 1).alias("encounter_id"),
        "order_id",
        "panel_code",
        "panel_name",
        F.col("code").alias("test_source_code"),
        F.col("vocabulary").alias("test_source_vocabulary"),
        F.col("code_name").alias("test_source_name"),
        F.col("local_code").alias("test_local_code"),
        F.col("local_name").alias("test_local_name"),
        "value_type",
        "value_source",
        "value_as_number",
        "unit_source",
        "reference_range_source",
        low.alias("reference_low"),
        high.alias("reference_high"),
        "abnormal_flag",
        "result_status",
        "collected_at",
        "collected_at_source",
        "reported_at",
        "comment",
        F.col("updated_at").alias("source_updated_at"),
        F.col("deleted").alias("is_deleted"),
    )


def _vital_rows(res: DataFrame) -> DataFrame:
    return res.select(
        *_lineage(),
        F.col("result_id").alias("vital_id"),
        patient_key(F.col("institution_code"), F.col("patient_id")).alias("patient_key"),
        "patient_id",
        _comp(_rep(_field(F.col("pv1"), 19)), 1).alias("encounter_id"),
        F.col("code").alias("source_code"),
        F.col("vocabulary").alias("source_vocabulary"),
        F.col("code_name").alias("source_name"),
        "value_as_number",
        "unit_source",
        F.col("collected_at").alias("measured_at"),
        F.col("collected_at_source").alias("measured_at_source"),
        F.col("updated_at").alias("source_updated_at"),
        F.col("deleted").alias("is_deleted"),
    )


# --- rejects ---------------------------------------------------------------------------


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


def _file_name() -> Column:
    return F.element_at(F.split(F.col("file_path"), "/"), -1)


def _message_type() -> Column:
    return F.coalesce(F.concat_ws("^", F.col("message_code"), F.col("trigger_event")), F.lit("?"))


# --- the transform ---------------------------------------------------------------------


def transform_lis(bronze: DataFrame) -> SilverOutput:
    """``bronze.lis_hl7v2_messages`` rows -> silver rows and rejects (see module docstring)."""
    # Parsed once for every output table (and a plan barrier: the mapping projections below
    # compile as small separate stages). Lazy: materialized by the first table written.
    msgs = _patient_ids(_segments(bronze)).localCheckpoint(eager=False)
    has_pid = F.col("pid").isNotNull()
    no_id = has_pid & F.col("patient_id").isNull()
    bad_time = has_pid & F.col("patient_id").isNotNull() & F.col("msg_at").isNull()
    good = msgs.where(has_pid & F.col("patient_id").isNotNull() & F.col("msg_at").isNotNull())

    out = SilverOutput()
    out.add("silver.patient", _patients(good))
    out.add("silver.encounter", _encounters(good))
    out.add("silver.encounter_transfer", _transfers(good))
    res = _results(_observations(good))
    coded = res.where(F.col("obx_code").isNotNull())
    is_vital = (F.col("vocabulary") == "LOINC") & F.col("code").isin(*sorted(VITAL_LOINC))
    out.add("silver.lab_result", _lab_rows(coded.where(~is_vital)))
    out.add("silver.vital_sign", _vital_rows(coded.where(is_vital)))

    fmt = "HL7 v2 message %s of %s"
    where = F.format_string(fmt, F.col("record_index").cast("string"), _file_name())
    out.reject(
        _reject(
            msgs.where(no_id),
            ErrorCode.SILVER_HL7_NO_PATIENT_ID,
            F.concat(where, F.lit(" ("), _message_type(), F.lit(") has no patient identifier")),
        )
    )
    out.reject(
        _reject(
            msgs.where(bad_time),
            ErrorCode.SILVER_HL7_BAD_TIME,
            F.concat(where, F.lit(": MSH-7 is not an HL7 date/time")),
        )
    )
    out.reject(
        _reject(
            msgs.where(~has_pid),
            ErrorCode.SILVER_HL7_NOT_MAPPED,
            F.concat(where, F.lit(" ("), _message_type(), F.lit(") has no PID segment; skipped")),
        )
    )
    obx_n = F.coalesce(
        _comp(_rep(_field(F.col("obx"), 1)), 1), (F.col("obx_pos") + 1).cast("string")
    )
    out.reject(
        _reject(
            res.where(F.col("obx_code").isNull()),
            ErrorCode.SILVER_HL7_OBX_NO_CODE,
            F.concat(where, F.lit(": OBX "), obx_n, F.lit(" has no OBX-3")),
        )
    )
    return out
