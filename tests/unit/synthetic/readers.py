"""Independent readers the tests check the emitted formats with (not the generator's code)."""

from __future__ import annotations

from pathlib import Path

import hl7


def hl7_messages(path: Path, encoding: str = "utf-8") -> list[str]:
    """The messages of an HL7 drop: batch (FHS/BHS) or MLLP-framed, any segment separator."""
    text = path.read_bytes().decode(encoding)
    if text.startswith("\x0b"):
        frames = [f.lstrip("\x0b") for f in text.split("\x1c\r") if f.strip()]
        return [f.replace("\r\n", "\r").replace("\n", "\r") for f in frames]
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    segments = [s for s in text.split("\r") if s]
    messages: list[list[str]] = []
    for seg in segments:
        if seg[:3] in ("FHS", "BHS", "BTS", "FTS"):
            continue
        if seg.startswith("MSH") or not messages:
            messages.append([seg])
        else:
            messages[-1].append(seg)
    return ["\r".join(m) for m in messages]


def parse_hl7(path: Path, encoding: str = "utf-8") -> list[hl7.Message]:
    return [hl7.parse(m) for m in hl7_messages(path, encoding)]
