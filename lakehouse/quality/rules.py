"""Data-quality rules as data: the rule model and its YAML loader.

A rule file (``lakehouse/quality/rules/*.yaml``) holds ``rules:``, a list of mappings::

    - id: SLV-ENC-003
      version: 1
      description: {en: Discharge is not before admission, zh: 出院日期不早于入院日期}
      table: silver.encounter
      kahn: {context: verification, category: plausibility, subcategory: temporal}
      severity: error
      threshold: 0          # percent of checked rows allowed to fail
      where: "not is_deleted and encounter_class = 'inpatient'"   # rows checked
      check: {type: temporal_order, before: admit_at, after: discharge_at}

Each check type (:data:`CHECK_TYPES`) compiles to Spark SQL (``lakehouse.quality.compile``).
A rule that does not validate is refused with ``LH-DQC-001`` naming the file and rule, so a
typo never turns into a check that silently passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lakehouse.errors import ErrorCode, error

RULES_DIR = Path(__file__).parent / "rules"

#: Kahn, Callahan et al. (2016) harmonized data-quality terminology.
KAHN_CONTEXTS = ("verification", "validation")
KAHN_CATEGORIES = {
    "completeness": (),
    "conformance": ("value", "relational", "computational"),
    "plausibility": ("uniqueness", "atemporal", "temporal"),
    "uniqueness": (),  # also written as plausibility/uniqueness; kept for rule authors
    "timeliness": (),
}
SEVERITIES = ("fatal", "error", "warning", "info", "convention", "characterization")

#: Check type -> required parameters (optional ones are read by the compiler).
CHECK_TYPES: Mapping[str, tuple[str, ...]] = {
    "violated_when": ("sql",),
    "not_null": ("column",),
    "unique": ("columns",),
    "in_set": ("column", "values"),
    "foreign_key": ("columns", "ref_table", "ref_columns"),
    "has_related": ("columns", "ref_table", "ref_columns"),
    "code_valid": ("column", "date_column"),
    "temporal_order": ("before", "after"),
    "computed": ("expression", "expected"),
    "timeliness": ("column", "max_lag_hours"),
}


@dataclass(frozen=True)
class Lookup:
    """A reference table joined to the checked rows on equal columns (left join).

    The reference side is grouped by its join columns first, so a lookup never multiplies
    the checked rows; its ``columns`` are aggregated with ``agg`` (min by default) and
    ``hit`` is true where a reference row matched.
    """

    alias: str
    table: str
    on: tuple[tuple[str, str], ...]  # (checked-table expression, reference column)
    columns: tuple[str, ...] = ()
    where: str | None = None
    agg: str = "min"


@dataclass(frozen=True)
class Rule:
    """One data-quality rule (also what the OMOP DQD checks are generated as)."""

    id: str
    version: int
    table: str
    category: str
    check: Mapping[str, Any]
    description: str = ""
    context: str = "verification"
    subcategory: str | None = None
    severity: str = "error"
    threshold: float = 0.0
    threshold_source: str = "rule"
    where: str | None = None
    column: str | None = None
    key: tuple[str, ...] = ()
    layer: str | None = None
    check_name: str | None = None  # DQD check name, else the check type
    lookups: tuple[Lookup, ...] = ()
    source_file: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def check_type(self) -> str:
        return str(self.check["type"])

    @property
    def rule_layer(self) -> str:
        return self.layer or self.table.split(".", 1)[0]


def _bad(file: str, rule: str, reason: str) -> Exception:
    return error(ErrorCode.DQ_RULE_INVALID, file=file, name=rule, reason=reason)


def _description(value: Any) -> str:
    if isinstance(value, Mapping):
        parts = [str(value[k]) for k in ("en", "zh") if value.get(k)]
        return " / ".join(parts)
    return str(value or "")


def _lookups(raw: Any, file: str, rid: str) -> tuple[Lookup, ...]:
    if not raw:
        return ()
    if not isinstance(raw, Mapping):
        raise _bad(file, rid, "lookups must map an alias to {table, on, columns}")
    out = []
    for alias, spec in raw.items():
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        on = spec.get("on", spec.get(True)) if isinstance(spec, Mapping) else None
        if not isinstance(spec, Mapping) or "table" not in spec or on is None:
            raise _bad(file, rid, f"lookup {alias} needs table and on")
        if not isinstance(on, Mapping) or not on:
            raise _bad(file, rid, f"lookup {alias}: on maps checked columns to reference columns")
        out.append(
            Lookup(
                alias=str(alias),
                table=str(spec["table"]),
                on=tuple((str(k), str(v)) for k, v in on.items()),
                columns=tuple(str(c) for c in spec.get("columns", ())),
                where=spec.get("where"),
                agg=str(spec.get("agg", "min")),
            )
        )
    return tuple(out)


def parse_rule(raw: Mapping[str, Any], *, file: str = "<memory>") -> Rule:
    """Validate one rule mapping (``LH-DQC-001`` when it is not a valid rule)."""
    rid = str(raw.get("id") or "")
    if not rid:
        raise _bad(file, "(no id)", "every rule needs an id")
    for name in ("table", "kahn", "check"):
        if name not in raw:
            raise _bad(file, rid, f"missing {name}")
    table = str(raw["table"])
    if table.count(".") != 1:
        raise _bad(file, rid, "table must be <schema>.<table>")
    kahn = raw["kahn"]
    if not isinstance(kahn, Mapping):
        raise _bad(file, rid, "kahn must hold context, category and subcategory")
    category = str(kahn.get("category", "")).lower()
    if category not in KAHN_CATEGORIES:
        raise _bad(file, rid, f"kahn category must be one of {', '.join(KAHN_CATEGORIES)}")
    sub = kahn.get("subcategory")
    sub = str(sub).lower() if sub else None
    if sub and KAHN_CATEGORIES[category] and sub not in KAHN_CATEGORIES[category]:
        raise _bad(file, rid, f"kahn subcategory of {category}: {KAHN_CATEGORIES[category]}")
    context = str(kahn.get("context", "verification")).lower()
    if context not in KAHN_CONTEXTS:
        raise _bad(file, rid, "kahn context must be verification or validation")
    check = raw["check"]
    if not isinstance(check, Mapping) or check.get("type") not in CHECK_TYPES:
        raise _bad(file, rid, f"check type must be one of {', '.join(CHECK_TYPES)}")
    missing = [p for p in CHECK_TYPES[str(check["type"])] if p not in check]
    if missing:
        raise _bad(file, rid, f"check {check['type']} needs {', '.join(missing)}")
    severity = str(raw.get("severity", "error"))
    if severity not in SEVERITIES:
        raise _bad(file, rid, f"severity must be one of {', '.join(SEVERITIES)}")
    try:
        threshold = float(raw.get("threshold", 0))
        version = int(raw.get("version", 1))
    except (TypeError, ValueError):
        raise _bad(file, rid, "threshold and version must be numbers") from None
    if not 0 <= threshold <= 100:
        raise _bad(file, rid, "threshold is a percent between 0 and 100")
    key = raw.get("key", ())
    return Rule(
        id=rid,
        version=version,
        table=table,
        category=category,
        subcategory=sub,
        context=context,
        check=dict(check),
        description=_description(raw.get("description")),
        severity=severity,
        threshold=threshold,
        where=raw.get("where"),
        column=raw.get("column") or check.get("column"),
        key=tuple(key) if isinstance(key, list | tuple) else (str(key),),
        layer=raw.get("layer"),
        lookups=_lookups(raw.get("lookups"), file, rid),
        source_file=file,
    )


def load_rule_file(path: Path) -> list[Rule]:
    """The rules of one YAML file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise _bad(str(path), "(file)", type(exc).__name__) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("rules"), list):
        raise _bad(str(path), "(file)", "a rule file is a mapping with a rules: list")
    return [parse_rule(r, file=path.name) for r in doc["rules"]]


def load_rules(paths: Iterable[Path] | Path | None = None) -> list[Rule]:
    """Rules of the given files or folders (default: the shipped ``rules/*.yaml``).

    Rule ids are unique across everything loaded (``LH-DQC-001`` otherwise).
    """
    if paths is None:
        paths = [RULES_DIR]
    elif isinstance(paths, Path):
        paths = [paths]
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(p.glob("*.yaml")))
        elif p.is_file():
            files.append(p)
        else:
            raise _bad(str(p), "(file)", "no such rule file or folder")
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for f in files:
        for r in load_rule_file(f):
            if r.id in seen:
                raise _bad(f.name, r.id, f"rule id already defined in {seen[r.id]}")
            seen[r.id] = f.name
            rules.append(r)
    return rules


def select(rules: Sequence[Rule], *, layer: str | None = None) -> list[Rule]:
    """The rules of one layer (bronze, silver, gold...), or all."""
    return [r for r in rules if layer is None or r.rule_layer == layer]
