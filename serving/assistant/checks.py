"""The number test shared by the agent's citation check and the evaluation.

A sentence's numbers (dates and times aside: they are checked as dates) must each be a
value of a row the sentence cites, or part of a text value or a concept name of that row.
:mod:`serving.assistant.agent` refuses an LLM answer that fails it;
:mod:`serving.assistant.evaluate` counts a citation as precise only when it passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: A date, optionally with a time (``2026-11-20``, ``2026-11-20 09:30``, ``...T09:30:00``).
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def numbers(text: str) -> list[str]:
    """The numbers of ``text`` outside dates and times."""
    return NUMBER.findall(DATE_TIME.sub(" ", text))


def close(a: float, b: float, tolerance: float = 1e-6) -> bool:
    return abs(a - b) <= max(tolerance * abs(b), 1e-9)


def supported(number: str, row: dict[str, Any], names: Iterable[str]) -> bool:
    """Whether ``number`` (from a sentence) is a value of ``row`` or part of a name."""
    x = float(number)
    for v in row.values():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int | float) and close(float(v), x):
            return True
        if isinstance(v, str) and re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", v):
            return True
    return any(re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", n) for n in names)
