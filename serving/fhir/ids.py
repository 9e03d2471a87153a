"""FHIR logical ids of silver rows, and their reverse.

A silver row is keyed by institution, source system and source id; a FHIR id may hold only
``[A-Za-z0-9.-]`` (64 at most). The id joins the key parts with ``-``; inside a part every
character but ``[A-Za-z0-9]`` is written ``.XX`` (the hex of its UTF-8 bytes). The mapping is
reversible, so a read goes straight to the row. Patients are keyed by institution and
patient id (the ``patient_key``), clinical rows by institution, source system and source id.
"""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[A-Za-z0-9]")
_ID = re.compile(r"[A-Za-z0-9.\-]{1,64}")
_ESCAPE = re.compile(r"\.([0-9A-F]{2})")


def _part(text: str) -> str:
    return "".join(
        ch if _PLAIN.fullmatch(ch) else "".join(f".{b:02X}" for b in ch.encode("utf-8"))
        for ch in text
    )


def encode(*parts: str) -> str:
    """The FHIR id of a key (``H1``, ``lis``, ``R|2`` -> ``H1-lis-R.7C2``)."""
    return "-".join(_part(p) for p in parts)


def decode(fhir_id: str, width: int) -> tuple[str, ...] | None:
    """The key parts of an id, or None when it is not an id of this shape."""
    if not _ID.fullmatch(fhir_id):
        return None
    parts = fhir_id.split("-")
    if len(parts) != width or not all(parts):
        return None
    out = []
    for p in parts:
        if "." in _ESCAPE.sub("", p):
            return None
        try:
            out.append(_unescape(p))
        except ValueError:  # not UTF-8
            return None
    return tuple(out)


def _unescape(part: str) -> str:
    data = bytearray()
    i = 0
    while i < len(part):
        if part[i] == ".":
            data.append(int(part[i + 1 : i + 3], 16))
            i += 3
        else:
            data.extend(part[i].encode())
            i += 1
    return data.decode("utf-8")  # raises ValueError (UnicodeDecodeError) when malformed


def patient_id(institution: str, patient: str) -> str:
    """The Patient id of a patient key (institution, patient id)."""
    return encode(institution, patient)
