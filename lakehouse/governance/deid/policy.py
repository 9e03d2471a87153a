"""The de-identification policy as data: which transform each PHI tag gets, per column.

Loaded from ``lakehouse/governance/policies/deid.yaml`` (setting ``deid.policy_file``) into
typed rules. Loading refuses a rule that would expose a tag (``keep`` on a name, an
identifier, a contact, raw payload or free text) with ``LH-SEC-011``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lakehouse.errors import ErrorCode, error
from lakehouse.tables.spec import LAYERS, Phi

DEFAULT_DEID_POLICY = Path(__file__).parents[1] / "policies" / "deid.yaml"

Transform = Literal[
    "drop", "keep", "token", "shift", "year", "age_band", "prefix", "regex", "deidentified"
]

#: The transforms each tag may get; anything else is a policy error.
ALLOWED: dict[Phi, frozenset[str]] = {
    Phi.NAME: frozenset({"drop"}),
    Phi.CONTACT: frozenset({"drop"}),
    Phi.RAW: frozenset({"drop"}),
    Phi.IDENTIFIER: frozenset({"drop", "token"}),
    Phi.DATE: frozenset({"drop", "shift", "year"}),
    Phi.ADDRESS: frozenset({"drop", "keep", "prefix", "regex"}),
    Phi.FREE_TEXT: frozenset({"drop", "deidentified"}),
    Phi.QUASI: frozenset({"drop", "keep", "age_band", "prefix", "regex", "year"}),
}


class Rule(BaseModel):
    """One rule: for columns with ``tag`` (and a name matching ``columns``), ``transform``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: Phi
    columns: tuple[str, ...] = Field(default=("*",), description="Column name patterns.")
    transform: Transform
    length: int | None = Field(default=None, ge=1, description="prefix: characters kept.")
    pattern: str | None = Field(default=None, description="regex: the part kept (group 0).")
    band: int | None = Field(default=None, ge=1, description="age_band: width in years.")
    cap: int | None = Field(default=None, ge=1, description="year, age_band: top age shown.")
    quasi: bool | None = Field(default=None, description="Quasi-identifier of the k check.")

    @model_validator(mode="after")
    def _complete(self) -> Rule:
        if self.transform not in ALLOWED[self.tag]:
            raise ValueError(f"transform {self.transform} is not allowed for tag {self.tag}")
        needs = {"prefix": "length", "regex": "pattern", "age_band": "band"}.get(self.transform)
        if needs and getattr(self, needs) is None:
            raise ValueError(f"transform {self.transform} needs {needs}")
        return self

    def matches(self, tag: Phi, column: str) -> bool:
        return tag == self.tag and any(fnmatchcase(column, p) for p in self.columns)

    @property
    def is_quasi(self) -> bool:
        if self.quasi is not None:
            return self.quasi
        if self.transform == "drop":
            return False
        return self.tag in (Phi.QUASI, Phi.ADDRESS) or self.transform == "year"


DROP = Rule(tag=Phi.RAW, transform="drop")


class DeidPolicy(BaseModel):
    """A whole de-identification policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    layers: tuple[str, ...] = ("silver", "gold")
    schema_: str = Field(default="deid", alias="schema")
    materialize_layer: str = "features"
    counterparts: tuple[str, ...] = ("{column}_deid", "text_deid")
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _layers(self) -> DeidPolicy:
        for layer in (*self.layers, self.schema_, self.materialize_layer):
            if layer not in LAYERS:
                raise ValueError(f"unknown layer {layer}")
        if self.schema_ in self.layers:
            raise ValueError("the views' schema cannot be one of the source layers")
        return self

    def rule(self, tag: Phi, column: str) -> Rule:
        """The first rule for ``tag`` and ``column``; unmatched tags are dropped."""
        for r in self.rules:
            if r.matches(tag, column):
                return r
        return DROP

    def view_name(self, source: str) -> str:
        """``silver.patient`` -> ``deid.silver_patient``."""
        return f"{self.schema_}.{source.replace('.', '_', 1)}"

    def materialized_name(self, source: str) -> str:
        """``silver.patient`` -> ``features.deid_silver_patient``."""
        return f"{self.materialize_layer}.{self.schema_}_{source.replace('.', '_', 1)}"


def load_deid_policy(path: Path | None = None) -> DeidPolicy:
    """Load and check a de-identification policy (``LH-SEC-011`` when it is invalid)."""
    path = path or DEFAULT_DEID_POLICY
    try:
        return DeidPolicy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise error(ErrorCode.POLICY_INVALID, path=str(path), reason=type(exc).__name__) from exc
    except yaml.YAMLError as exc:
        raise error(ErrorCode.POLICY_INVALID, path=str(path), reason="not valid YAML") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise error(ErrorCode.POLICY_INVALID, path=str(path), reason=reason) from exc
