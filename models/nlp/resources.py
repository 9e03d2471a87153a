"""The versioned rule and lexicon files in ``models/nlp/resources``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from lakehouse.errors import ErrorCode, error

RESOURCE_NAMES = ("sections", "lexicon", "context", "phi")


@cache
def load_resource(name: str) -> dict[str, Any]:
    """One resource file as a dict; every file carries a ``version`` field."""
    if name not in RESOURCE_NAMES:
        raise error(ErrorCode.NLP_RESOURCE_INVALID, name=name, reason="not a known resource")
    text = resources.files("models.nlp").joinpath("resources", f"{name}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    if not isinstance(data.get("version"), str):
        raise error(ErrorCode.NLP_RESOURCE_INVALID, name=name, reason="no version field")
    return data


def versions() -> dict[str, str]:
    """The version of each resource file, as recorded with every result."""
    return {name: str(load_resource(name)["version"]) for name in RESOURCE_NAMES}
