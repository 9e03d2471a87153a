"""Chinese resident ID numbers (GB 11643-1999): check digit, birth date, region."""

from __future__ import annotations

from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
#: First two digits of the administrative divisions that issue resident ID numbers.
PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)


def check_digit(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def birth_date(number: str) -> date | None:
    """The birth date encoded in positions 7-14, or None if it is not a real date."""
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None
    return born if 1880 <= born.year <= 2100 else None


def looks_like_id(number: str) -> bool:
    """18 characters, a real province, a real birth date (the check digit may be wrong)."""
    return (
        len(number) == 18
        and number[:17].isdigit()
        and (number[17].isdigit() or number[17] in "Xx")
        and int(number[:2]) in PROVINCES
        and birth_date(number) is not None
    )


def is_valid_id(number: str) -> bool:
    """A real-looking 身份证号: province, birth date and check digit all valid."""
    return looks_like_id(number) and check_digit(number[:17]) == number[17].upper()
