"""身份证号 (GB 11643-1999) rules: check character, embedded birth date and sex.

An 18-character resident ID number is region (6 digits), birth date (``yyyyMMdd``),
sequence (3 digits; the last one odd for men, even for women) and the ISO 7064 MOD 11-2
check character. The Python functions are the reference the Spark columns are tested
against; the linkage uses the Spark columns.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.silver.conform import id_card_validity

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
_FORM = r"^\d{17}[\dX]$"


def check_character(first17: str) -> str:
    """The check character of the first 17 digits."""
    return CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def normalize(value: str | None) -> str | None:
    """Upper-cased, trimmed, full-width digits and X folded; None unless 17 digits + 0-9/X."""
    if value is None:
        return None
    text = value.strip().upper().translate(_FULL_WIDTH)
    if len(text) != 18 or not text[:17].isdigit() or not (text[17].isdigit() or text[17] == "X"):
        return None
    return text


_FULL_WIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789XX")


def birth_date(value: str) -> date | None:
    """The birth date the number embeds (None when it is not a calendar date)."""
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def sex_code(value: str) -> str:
    """GB/T 2261.1 sex the number embeds: '1' (17th digit odd, male) or '2' (female)."""
    return "1" if int(value[16]) % 2 == 1 else "2"


def is_valid(value: str | None) -> bool:
    """Well formed, a real birth date and the right check character."""
    text = normalize(value)
    return (
        text is not None and birth_date(text) is not None and check_character(text[:17]) == text[17]
    )


def is_consistent(value: str | None, born: date | None, sex: str | None) -> bool:
    """Valid, and agrees with the record's own birth date and sex where those are known."""
    if not is_valid(value):
        return False
    text = normalize(value)
    assert text is not None
    if born is not None and birth_date(text) != born:
        return False
    return sex not in ("1", "2") or sex_code(text) == sex


# --- the same rules as Spark columns ------------------------------------------------------


def normalized_col(c: Column) -> Column:
    """Spark: :func:`normalize`."""
    text = F.translate(F.upper(F.trim(c)), "０１２３４５６７８９Ｘｘ", "0123456789XX")
    return F.when(text.rlike(_FORM), text)


def birth_date_col(id_card: Column) -> Column:
    """Spark: :func:`birth_date` of a normalized number (null when not a date)."""
    return F.to_date(F.try_to_timestamp(F.substring(id_card, 7, 8), F.lit("yyyyMMdd")))


def sex_code_col(id_card: Column) -> Column:
    """Spark: :func:`sex_code` of a normalized number."""
    return F.when(F.substring(id_card, 17, 1).cast("int") % 2 == 1, F.lit("1")).when(
        id_card.isNotNull(), F.lit("2")
    )


def consistent_col(id_card: Column, born: Column, sex: Column) -> Column:
    """Spark: :func:`is_consistent` (never null)."""
    valid = id_card_validity(id_card) == "valid"
    born_ok = born.isNull() | (birth_date_col(id_card) == born)
    sex_ok = ~sex.isin("1", "2") | sex.isNull() | (sex_code_col(id_card) == sex)
    return F.coalesce(id_card.isNotNull() & valid & born_ok & sex_ok, F.lit(False))
