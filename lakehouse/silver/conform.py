"""Spark-native conformance of values every source writes its own way.

Timestamps: HL7 v2 DTM (``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``), ISO 8601 with or
without an offset (FHIR, CDA), and the ``2024/08/13 16:09``-style text of CSV exports. A
value without an offset is hospital local time (``spark.sql.session.timeZone`` =
``Settings.timezone``); one with an offset is converted. Unparseable text gives null (the
original stays in the ``*_source`` column), never an error.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_HL7_FORMATS = (
    (14, "yyyyMMddHHmmss"),
    (12, "yyyyMMddHHmm"),
    (10, "yyyyMMddHH"),
    (8, "yyyyMMdd"),
)
_TEXT_FORMATS = (
    "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]XXX",
    "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]",
    "yyyy-MM-dd'T'HH:mm[:ss]",
    "yyyy-MM-dd HH:mm[:ss]",
    "yyyy/MM/dd HH:mm[:ss]",
    "yyyy/M/d H:mm[:ss]",
    "yyyy-MM-dd",
    "yyyy/MM/dd",
    "yyyy/M/d",
)


def _try(text: Column, fmt: str) -> Column:
    return F.try_to_timestamp(text, F.lit(fmt))


def parse_timestamp(c: Column) -> Column:
    """Any of the formats above -> TIMESTAMP (session time zone); null when unparseable."""
    text = F.trim(c)
    # HL7 DTM: digits, optional fraction, optional offset; the offset becomes ISO form.
    hl7 = F.regexp_extract(text, r"^(\d{4,14})(?:\.\d+)?([+-]\d{4})?$", 1)
    offset = F.regexp_extract(text, r"^\d{4,14}(?:\.\d+)?([+-]\d{4})$", 1)
    parts = []
    for length, fmt in _HL7_FORMATS:
        local = _try(hl7, fmt)
        zoned = _try(F.concat(hl7, offset), fmt + "Z")
        parts.append(F.when(F.length(hl7) == length, F.when(offset != "", zoned).otherwise(local)))
    year_month = F.when(F.length(hl7) == 6, _try(hl7, "yyyyMM")).when(
        F.length(hl7) == 4, _try(hl7, "yyyy")
    )
    text_forms = [_try(text, fmt) for fmt in _TEXT_FORMATS]
    return F.when(text.isNull() | (text == ""), F.lit(None).cast("timestamp")).otherwise(
        F.when(hl7 != "", F.coalesce(*parts, year_month)).otherwise(F.coalesce(*text_forms))
    )


def parse_date(c: Column) -> Column:
    """The date part of :func:`parse_timestamp` (birth dates: 19700717, 1970-07-17...)."""
    return F.to_date(parse_timestamp(c))


def parse_number(c: Column) -> Column:
    """A decimal number written as text (``'11.5'``, ``' 5 '``, ``'1,234.5'``); else null."""
    text = F.regexp_replace(F.trim(c), ",", "")
    return F.when(text.rlike(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"), text.cast("double"))


def reference_range(c: Column) -> tuple[Column, Column]:
    """``'3.9-6.1'`` -> (3.9, 6.1); ``'<5.2'`` -> (null, 5.2); ``'>1.0'`` -> (1.0, null)."""
    text = F.regexp_replace(F.trim(c), r"\s+", "")
    num = r"([+-]?\d+(?:\.\d+)?)"
    low = F.regexp_extract(text, rf"^{num}[-~–]{num}$", 1)
    high = F.regexp_extract(text, rf"^{num}[-~–]{num}$", 2)
    lt = F.regexp_extract(text, rf"^(?:<|<=|≤){num}$", 1)
    gt = F.regexp_extract(text, rf"^(?:>|>=|≥){num}$", 1)
    return (
        F.coalesce(F.when(low != "", low), F.when(gt != "", gt)).cast("double"),
        F.coalesce(F.when(high != "", high), F.when(lt != "", lt)).cast("double"),
    )


def phone_digits(c: Column) -> Column:
    """A telephone number as digits, the +86/0086 country code and ``tel:`` removed."""
    digits = F.regexp_replace(F.regexp_replace(F.trim(c), r"^tel:", ""), r"[^0-9]", "")
    stripped = F.regexp_replace(digits, r"^(0086|86)(1[3-9]\d{9})$", "$2")
    return F.when(stripped != "", stripped)


def id_card_validity(c: Column) -> Column:
    """GB 11643 check of an 18-character resident ID number: valid, invalid or missing.

    Checks the form, the birth date it embeds and the ISO 7064 MOD 11-2 check character.
    """
    text = F.upper(F.trim(c))
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(
        (F.substring(text, i + 1, 1).cast("int") * w for i, w in enumerate(weights)),
        F.lit(0),
    )
    expected = F.element_at(
        F.array(*[F.lit(x) for x in "10X98765432"]), (total % 11 + 1).cast("int")
    )
    born = F.try_to_timestamp(F.substring(text, 7, 8), F.lit("yyyyMMdd"))
    well_formed = text.rlike(r"^\d{17}[\dX]$") & born.isNotNull()
    return (
        F.when(text.isNull() | (text == ""), "missing")
        .when(well_formed & (F.substring(text, 18, 1) == expected), "valid")
        .otherwise("invalid")
    )


_PROVINCE = (
    r"(北京市|天津市|上海市|重庆市|[^省市]{2,3}省|[^区]{2,8}?自治区"
    r"|香港特别行政区|澳门特别行政区)"
)
_CITY = r"([^市州盟]{1,10}?(?:市|自治州|州|地区|盟))"
_COUNTY = r"([^区县旗]{1,10}?(?:区|县|旗|市))"


def address_parts(c: Column) -> tuple[Column, Column, Column]:
    """Province, city and county of a Chinese address written as one string.

    ``江西省南昌市东湖区解放路62号`` -> (江西省, 南昌市, 东湖区); a municipality is its own
    city (``上海市浦东新区...`` -> (上海市, 上海市, 浦东新区)). Parts not found are null.
    """
    text = F.regexp_replace(F.trim(c), r"\s+", "")
    province = F.regexp_extract(text, rf"^{_PROVINCE}", 1)
    after_p = F.substring(text, F.length(province) + 1, F.lit(1000))
    municipality = province.isin("北京市", "天津市", "上海市", "重庆市")
    city = F.when(municipality, province).otherwise(F.regexp_extract(after_p, rf"^{_CITY}", 1))
    after_c = F.when(municipality, after_p).otherwise(
        F.substring(after_p, F.length(city) + 1, F.lit(1000))
    )
    county = F.regexp_extract(after_c, rf"^{_COUNTY}", 1)
    return (
        F.when(province != "", province),
        F.when(city != "", city),
        F.when(county != "", county),
    )
