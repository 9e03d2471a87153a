"""Format-keeping surrogates, deterministic under a secret key.

The same key, kind and original value always give the same surrogate, so a person keeps
one surrogate across a document set; dates move by one offset per person. Surrogates are
built so that de-identifying them again changes nothing:

- 身份证号: region ``990000`` (no such province), the birth date shifted like every date of
  the person, a hashed sequence and a correct check digit: valid-looking, never valid.
- mobile: ``10`` + 9 hashed digits (no mobile starts 10); landline: the area code kept and
  a local number starting with 0 (no local number does).
- names: a surname and given characters from the surrogate alphabets of ``phi.json``.
- addresses: province/city/district kept, the street and numbers replaced by a surrogate.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from models.nlp import identifiers
from models.nlp.recognizers import DATE_RE
from models.nlp.resources import load_resource

_ADMIN = re.compile(
    r"(?:[\u4e00-\u9fff]{2,7}?(?:省|自治区)|北京市|上海市|天津市|重庆市)?"
    r"(?:[\u4e00-\u9fff]{2,7}?市)?(?:[\u4e00-\u9fff]{1,6}?(?:区|县|旗))?"
)


@cache
def _cfg() -> dict[str, Any]:
    cfg: dict[str, Any] = load_resource("phi")["surrogate"]
    return cfg


def digest(key: bytes, *parts: str) -> int:
    msg = "\x1f".join(parts).encode("utf-8")
    return int.from_bytes(hmac.new(key, msg, hashlib.sha256).digest()[:8], "big")


def date_offset(key: bytes, person: str) -> int:
    """A person's date shift in days (never 0), from a keyed hash of the person id."""
    lo, hi = (int(x) for x in _cfg()["date_shift_days"])
    days = lo + digest(key, "date", person) % (hi - lo)
    return days if days != 0 else hi


def name(key: bytes, value: str) -> str:
    c, h = _cfg(), digest(key, "name", value)
    if re.fullmatch(r"[A-Za-z]+(?:[ -][A-Za-z]+)*", value):
        words = re.split(r"[ -]", value)
        first = c["en_first"][h % len(c["en_first"])]
        last = c["en_last"][(h >> 8) % len(c["en_last"])]
        return " ".join([first] + [last] * (len(words) - 1)) if len(words) > 1 else first
    given = c["name_given"]
    sur: str = c["name_surnames"][h % len(c["name_surnames"])]
    rest = "".join(given[(h >> (8 * (i + 1))) % len(given)] for i in range(max(1, len(value) - 1)))
    return sur + rest


def is_surrogate_name(value: str) -> bool:
    c = _cfg()
    if (
        value
        and value[0] in c["name_surnames"]
        and value[1:]
        and all(ch in c["name_given"] for ch in value[1:])
    ):
        return True
    words = value.split(" ")
    return words[0] in c["en_first"] and all(w in c["en_last"] for w in words[1:])


def id_card(key: bytes, value: str, shift_days: int) -> str:
    born = identifiers.birth_date(value) or date(1970, 1, 1)
    shifted = born + timedelta(days=shift_days)
    seq = f"{digest(key, 'id', value) % 1000:03d}"
    first17 = str(_cfg()["id_card_region"]) + shifted.strftime("%Y%m%d") + seq
    return first17 + identifiers.check_digit(first17)


def phone(key: bytes, value: str) -> str:
    """Same separators and length; the digits after the country or area code replaced."""
    digits = "".join(ch for ch in value if ch.isdigit())
    h = f"{digest(key, 'phone', value):020d}"
    prefix = str(_cfg()["mobile_prefix"])
    if re.search(r"1[3-9]\d{9}$", digits) and len(digits) in (11, 13):
        new = digits[:-11] + prefix + h[: 11 - len(prefix)]
    else:
        area = re.match(r"\(?(0\d{2,3})\)?-", value) or re.match(r"(0\d{2,3})", digits)
        keep = len(area[1]) if area else 0
        new = digits[:keep] + ("0" + h)[: len(digits) - keep]
    it = iter(new)
    return "".join(next(it) if ch.isdigit() else ch for ch in value)


def is_surrogate_address(value: str) -> bool:
    return any(s in value for s in _cfg()["streets"])


def address(key: bytes, value: str) -> str:
    h = digest(key, "address", value)
    street = _cfg()["streets"][h % len(_cfg()["streets"])]
    m = _ADMIN.match(value)
    keep = m[0] if m else ""
    return f"{keep}{street}{h % 300 + 1}号{(h >> 12) % 30 + 1}栋{(h >> 20) % 2000 + 101}室"


def _shift_english(value: str, shift_days: int) -> str:
    """02/24/2026, Feb 24, 2026 and 24 February 2026 (US order for the numeric form)."""
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})(.*)", value)
    try:
        if m:
            d = datetime(int(m[3]), int(m[1]), int(m[2])) + timedelta(days=shift_days)
            return f"{d.month:02d}/{d.day:02d}/{d.year}{m[4]}"
        m = re.fullmatch(r"([A-Za-z]+)\.? (\d{1,2}), (\d{4})(.*)", value)
        if m:
            d = datetime.strptime(f"{m[1][:3]} {m[2]} {m[3]}", "%b %d %Y")
            d += timedelta(days=shift_days)
            month = f"{d:%b}" if len(m[1]) <= 4 else f"{d:%B}"
            return f"{month} {d.day}, {d.year}{m[4]}"
        m = re.fullmatch(r"(\d{1,2}) ([A-Za-z]+)\.? (\d{4})(.*)", value)
        if m:
            d = datetime.strptime(f"{m[2][:3]} {m[1]} {m[3]}", "%b %d %Y")
            d += timedelta(days=shift_days)
            month = f"{d:%b}" if len(m[2]) <= 4 else f"{d:%B}"
            return f"{d.day} {month} {d.year}{m[4]}"
    except ValueError:
        return value
    return value


def shift_date(value: str, shift_days: int) -> str:
    """``value`` moved by ``shift_days``, written in the same format."""
    m = re.fullmatch(r"(\d{4})([-/.年])(\d{1,2})([-/.月])(\d{1,2})(日?)(.*)", value)
    if not DATE_RE.fullmatch(value):
        return value
    if not m:
        return _shift_english(value, shift_days)
    try:
        d = datetime(int(m[1]), int(m[3]), int(m[5])) + timedelta(days=shift_days)
    except ValueError:
        return value
    month = f"{d.month:02d}" if len(m[3]) == 2 else str(d.month)
    day = f"{d.day:02d}" if len(m[5]) == 2 else str(d.day)
    return f"{d.year:04d}{m[2]}{month}{m[4]}{day}{m[6]}{m[7]}"
