"""The clinical content of the synthetic hospital, read from versioned data files.

``data/clinical.json`` holds the lab catalog (local codes, LOINC, units, reference ranges,
alternative units), drugs, conditions (ICD-10, prevalence, the labs they push out of range,
the drugs they bring, the imaging finding they show) and departments. ``data/phrases.json``
holds the note phrase templates by assertion status. Clinical rules are data, not code.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any


def load(name: str) -> dict[str, Any]:
    """One JSON file of ``lakehouse/synthetic/data``."""
    text = resources.files("lakehouse.synthetic").joinpath("data", name).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@lru_cache(maxsize=1)
def clinical() -> dict[str, Any]:
    """The whole clinical catalog (labs, panels, drugs, conditions, departments, fees)."""
    return load("clinical.json")


@lru_cache(maxsize=1)
def phrases() -> dict[str, Any]:
    """Note phrase templates by assertion status and language."""
    return load("phrases.json")


def labs() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = clinical()["labs"]
    return result


def drugs() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = clinical()["drugs"]
    return result


def conditions() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = clinical()["conditions"]
    return result


def outcomes() -> dict[str, dict[str, Any]]:
    """Diagnoses recorded only as an outcome (COPD): not drawn with the conditions, so the
    per-condition random draws are the same as without them."""
    result: dict[str, dict[str, Any]] = clinical()["outcomes"]
    return result


def departments() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = clinical()["departments"]
    return result


def lab_flag(code: str, value: float) -> str:
    """HL7 abnormal flag of a value in the catalog's unit: L, H or N."""
    lab = labs()[code]
    if value < lab["low"]:
        return "L"
    if value > lab["high"]:
        return "H"
    return "N"


def round_lab(code: str, value: float) -> float:
    return round(value, int(labs()[code]["digits"]))
