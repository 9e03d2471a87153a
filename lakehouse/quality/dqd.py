"""OMOP DataQualityDashboard (DQD) checks over ``gold.*`` as rules of the quality engine.

Thresholds, and which field gets which check, come from the DQD threshold files
(``OMOP_CDMv5.4_Field_Level.csv``, ``_Table_Level.csv``, ``_Concept_Level.csv``,
``_Check_Descriptions.csv``) in ``settings.quality.dqd_thresholds_dir`` (default
``$LAKEHOUSE_REFDATA/omop-dqd-checks``); the files are read, never copied into the
repository. Without them the structural checks (isRequired, cdmDatatype, isPrimaryKey,
isForeignKey, fkDomain, isStandardValidConcept, plus cdmTable/cdmField) are derived from
``lakehouse.tables.gold.omop.FIELDS`` with threshold 0, and ``threshold_source`` says so;
so are plausibleStartBeforeEnd (``X_start_*`` before ``X_end_*``) and plausibleAfterBirth
(dates of person-scoped tables), also at threshold 0.

Each check is a :class:`~lakehouse.quality.rules.Rule` with DQD's numerator as its
violation predicate and DQD's denominator as its population, so all checks of a table run
in one scan. Status follows DQD: fail when percent failing > threshold. Only the tables of
``gold.omop.FIELDS`` are checked (the CDM tables this lakehouse builds); the DQD's other
tables (eras, cost, device_exposure...) are not part of it and are not reported.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.errors import ErrorCode, error
from lakehouse.quality.engine import Engine, Names, RuleResult
from lakehouse.quality.report import DEFAULT_OUTPUTS, Outputs, QualityReport, write_report
from lakehouse.quality.rules import Lookup, Rule
from lakehouse.settings import Settings
from lakehouse.tables.gold.omop import FIELDS, SPECS, OmopField

FIELD_FILE = "OMOP_CDMv5.4_Field_Level.csv"
TABLE_FILE = "OMOP_CDMv5.4_Table_Level.csv"
CONCEPT_FILE = "OMOP_CDMv5.4_Concept_Level.csv"
DESCRIPTION_FILE = "OMOP_CDMv5.4_Check_Descriptions.csv"

#: Kahn context, category, subcategory and severity of each check (DQD's own
#: _Check_Descriptions.csv; used when the files are not configured).
CHECKS: Mapping[str, tuple[str, str, str | None, str]] = {
    "cdmTable": ("verification", "conformance", "relational", "fatal"),
    "cdmField": ("verification", "conformance", "relational", "fatal"),
    "measurePersonCompleteness": ("validation", "completeness", None, "convention"),
    "isRequired": ("validation", "conformance", "relational", "fatal"),
    "cdmDatatype": ("verification", "conformance", "value", "fatal"),
    "isPrimaryKey": ("verification", "conformance", "relational", "fatal"),
    "isForeignKey": ("verification", "conformance", "relational", "fatal"),
    "fkDomain": ("verification", "conformance", "value", "convention"),
    "fkClass": ("verification", "conformance", "computational", "convention"),
    "isStandardValidConcept": ("verification", "conformance", "value", "convention"),
    "measureValueCompleteness": ("verification", "completeness", None, "characterization"),
    "standardConceptRecordCompleteness": ("verification", "completeness", None, "convention"),
    "sourceConceptRecordCompleteness": ("verification", "completeness", None, "convention"),
    "sourceValueCompleteness": ("verification", "completeness", None, "convention"),
    "plausibleValueLow": ("verification", "plausibility", "atemporal", "characterization"),
    "plausibleValueHigh": ("verification", "plausibility", "atemporal", "characterization"),
    "plausibleTemporalAfter": ("verification", "plausibility", "temporal", "characterization"),
    "plausibleDuringLife": ("verification", "plausibility", "temporal", "characterization"),
    "plausibleStartBeforeEnd": ("verification", "plausibility", "temporal", "characterization"),
    "plausibleAfterBirth": ("verification", "plausibility", "temporal", "characterization"),
    "plausibleBeforeDeath": ("verification", "plausibility", "temporal", "characterization"),
    "plausibleGender": ("validation", "plausibility", "atemporal", "characterization"),
}
STRUCTURAL = (
    "isRequired", "cdmDatatype", "isPrimaryKey", "isForeignKey", "fkDomain",
    "isStandardValidConcept",
)  # fmt: skip
GENDER = {"male": 8507, "female": 8532}
_VALUED = frozenset({"fkDomain", "fkClass", "plausibleValueLow", "plausibleValueHigh"})
DEATH_GRACE_DAYS = 60  # DQD: events up to 60 days after death are plausible

_PERSON = Lookup(
    alias="__person",
    table="gold.person",
    on=(("t.`person_id`", "person_id"),),
    columns=("birth_datetime", "year_of_birth", "month_of_birth", "day_of_birth",
             "gender_concept_id"),
)  # fmt: skip
_DEATH = Lookup(
    alias="__death", table="gold.death", on=(("t.`person_id`", "person_id"),),
    columns=("death_date",),
)  # fmt: skip
_BIRTH = (
    "coalesce(CAST(__person.birth_datetime AS DATE), make_date(__person.year_of_birth, "
    "coalesce(__person.month_of_birth, 1), coalesce(__person.day_of_birth, 1)))"
)


def _concept(field: str) -> Lookup:
    return Lookup(
        alias=f"__c_{field}",
        table="gold.concept",
        on=((f"t.`{field}`", "concept_id"),),
        columns=("domain_id", "concept_class_id", "standard_concept", "invalid_reason"),
    )


@dataclass(frozen=True)
class Thresholds:
    """The DQD files, as rows (small configuration files, read on the driver)."""

    folder: Path | None
    fields: list[dict[str, str]]
    tables: list[dict[str, str]]
    concepts: list[dict[str, str]]
    descriptions: dict[str, dict[str, str]]

    @property
    def source(self) -> str:
        return "dqd-csv" if self.folder else "cdm-spec"


def load_thresholds(folder: Path | None) -> Thresholds:
    """Read the DQD threshold files (``LH-DQC-002`` when the folder lacks them)."""
    if folder is None:
        return Thresholds(None, [], [], [], {})

    def read(name: str, required: bool = True) -> list[dict[str, str]]:
        path = folder / name
        if not path.is_file():
            if required:
                raise error(
                    ErrorCode.DQ_THRESHOLDS_INVALID, path=str(folder), reason=f"{name} missing"
                )
            return []
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return [
                {k: (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(fh)
            ]

    fields = read(FIELD_FILE)
    if fields and not {"cdmTableName", "cdmFieldName", "isRequired"} <= set(fields[0]):
        raise error(ErrorCode.DQ_THRESHOLDS_INVALID, path=str(folder), reason="unexpected columns")
    descriptions = {r["checkName"]: r for r in read(DESCRIPTION_FILE, required=False)}
    return Thresholds(folder, fields, read(TABLE_FILE), read(CONCEPT_FILE, False), descriptions)


def _threshold(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


_DATE_LIT = re.compile(r"^'(\d{4})(\d{2})(\d{2})'$")


def _bound(value: str, is_date: bool) -> str | None:
    """A DQD plausible value (SQL Server dialect) as Spark SQL; None when unknown."""
    v = value.strip()
    m = _DATE_LIT.match(v)
    if m:
        return f"DATE'{m.group(1)}-{m.group(2)}-{m.group(3)}'"
    if v.upper() == "DATEADD(DD,1,GETDATE())":
        return "date_add(current_date(), 1)"
    if v.upper() == "YEAR(GETDATE())+1":
        return "year(current_date()) + 1"
    if re.fullmatch(r"-?\d+(\.\d+)?", v) and not is_date:
        return v
    return None


class _Builder:
    """Turns the CDM fields and the DQD rows into rules."""

    def __init__(self, th: Thresholds, tables: Sequence[str]) -> None:
        self.th, self.tables = th, tables
        self.rules: list[Rule] = []
        self.skipped: list[str] = []

    def add(
        self, check: str, table: str, field: str | None, violation: str, *, threshold: float,
        where: str | None = None, lookups: Iterable[Lookup] = (), suffix: str = "",
        description: str = "", key: tuple[str, ...] = (), report_table: str | None = None,
    ) -> None:  # fmt: skip
        desc = self.th.descriptions.get(check)
        if desc:
            ctx = desc.get("kahnContext", "").lower() or CHECKS[check][0]
            cat = desc.get("kahnCategory", "").lower() or CHECKS[check][1]
            sub = desc.get("kahnSubcategory", "").lower() or None
            sev = desc.get("severity", "") or CHECKS[check][3]
            text = desc.get("checkDescription", "")
        else:
            ctx, cat, sub, sev = CHECKS[check]
            text = ""
        reported = report_table or table
        text = (
            (description or text)
            .replace("@cdmTableName", reported.upper())
            .replace("@cdmFieldName", (field or "").upper())
        )
        rid = "-".join(p for p in ("DQD", reported, field, check) if p) + suffix
        self.rules.append(
            Rule(
                id=rid, version=1, table=f"gold.{table}", category=cat, subcategory=sub,
                context=ctx, check={"type": "violated_when", "sql": violation},
                description=" ".join(text.split())[:500], severity=sev, threshold=threshold,
                threshold_source=self.th.source, where=where, column=field, key=key,
                layer="gold", check_name=check, lookups=tuple(lookups),
                tags={"table": f"gold.{reported}"},
            )
        )  # fmt: skip

    def field_checks(self, f: OmopField, row: Mapping[str, str] | None) -> None:
        t, c = f.table, f"t.`{f.name}`"

        def on(check: str) -> float | None:
            if row is None:
                return 0.0 if check in STRUCTURAL else None
            value = row.get(check, "")
            # fkDomain/fkClass name the domain/class, plausibleValue* hold the bound.
            enabled = bool(value) if check in _VALUED else value == "Yes"
            return _threshold(row.get(f"{check}Threshold")) if enabled else None

        is_int = f.cdm_type.lower() in ("integer", "bigint")
        is_date = f.cdm_type in ("date", "datetime")
        fk_table = (row.get("fkTableName", "").lower() if row else f.fk_table) or None
        fk_field = (row.get("fkFieldName", "").lower() if row else None) or (
            "concept_id" if fk_table == "concept" else f"{fk_table}_id"
        )
        domain = (row.get("fkDomain") if row else f.fk_domain) or None
        concept_field = f.name.endswith("concept_id") and fk_table == "concept"
        cl = _concept(f.name)
        if (th := on("isRequired")) is not None and (row or f.required):
            self.add("isRequired", t, f.name, f"{c} IS NULL", threshold=th)
        if (th := on("cdmDatatype")) is not None and is_int:
            self.add("cdmDatatype", t, f.name,
                     f"{c} IS NOT NULL AND try_cast(CAST({c} AS STRING) AS BIGINT) IS NULL",
                     threshold=th)  # fmt: skip
        if (th := on("isPrimaryKey")) is not None and (row or f.primary_key):
            dup = Lookup(alias=f"__pk_{f.name}", table=f"gold.{t}",
                         on=((c, f.name),), columns=("count(*) AS n",))  # fmt: skip
            self.add("isPrimaryKey", t, f.name, f"{c} IS NOT NULL AND {dup.alias}.n > 1",
                     threshold=th, lookups=[dup])  # fmt: skip
        th = on("isForeignKey")
        if th is not None and fk_table and fk_table in FIELDS and fk_table in self.tables:
            ref = Lookup(alias=f"__fk_{f.name}", table=f"gold.{fk_table}",
                         on=((c, fk_field),))  # fmt: skip
            zero = f" AND {c} <> 0" if fk_table == "concept" else ""
            self.add("isForeignKey", t, f.name,
                     f"{c} IS NOT NULL{zero} AND {ref.alias}.hit IS NULL",
                     threshold=th, lookups=[ref])  # fmt: skip
        if (th := on("fkDomain")) is not None and domain and concept_field:
            dom = domain.replace("'", "")
            self.add("fkDomain", t, f.name,
                     f"{c} <> 0 AND {cl.alias}.hit AND {cl.alias}.domain_id <> '{dom}'",
                     threshold=th, lookups=[cl])  # fmt: skip
        if row and (th := on("fkClass")) is not None and row.get("fkClass") and concept_field:
            cls = row["fkClass"].replace("'", "")
            self.add("fkClass", t, f.name,
                     f"{c} <> 0 AND {cl.alias}.hit AND {cl.alias}.concept_class_id <> '{cls}'",
                     threshold=th, lookups=[cl])  # fmt: skip
        if (
            (th := on("isStandardValidConcept")) is not None
            and concept_field
            and (row or (f.fk_domain and not f.name.endswith("_source_concept_id")))
        ):
            self.add("isStandardValidConcept", t, f.name,
                     f"{c} <> 0 AND {cl.alias}.hit AND (coalesce({cl.alias}.standard_concept, '')"
                     f" <> 'S' OR {cl.alias}.invalid_reason IS NOT NULL)",
                     threshold=th, lookups=[cl])  # fmt: skip
        if row is None:
            self._derived_temporal(f)
            return
        if (th := on("measureValueCompleteness")) is not None:
            self.add("measureValueCompleteness", t, f.name, f"{c} IS NULL", threshold=th)
        for check in ("standardConceptRecordCompleteness", "sourceConceptRecordCompleteness"):
            if (th := on(check)) is not None:
                self.add(check, t, f.name, f"{c} = 0", threshold=th)
        if (th := on("sourceValueCompleteness")) is not None and row.get(
            "standardConceptFieldName"
        ):
            std = row["standardConceptFieldName"].lower()
            # Row-weighted (DQD counts distinct source values): see docs/quality.md.
            self.add("sourceValueCompleteness", t, f.name, f"t.`{std}` = 0",
                     threshold=th, where=f"{c} IS NOT NULL")  # fmt: skip
        for check, op in (("plausibleValueLow", "<"), ("plausibleValueHigh", ">")):
            if (th := on(check)) is not None:
                bound = _bound(row.get(check, ""), is_date)
                if bound is None:
                    self.skipped.append(f"{t}.{f.name} {check}")
                    continue
                val = f"CAST({c} AS DATE)" if is_date else c
                self.add(check, t, f.name, f"{val} {op} {bound}", threshold=th)
        day = f"CAST({c} AS DATE)"
        has_person = any(x.name == "person_id" for x in FIELDS[t]) and t != "person"
        if (th := on("plausibleTemporalAfter")) is not None:
            ref_t = row.get("plausibleTemporalAfterTableName", "").lower()
            ref_f = row.get("plausibleTemporalAfterFieldName", "").lower()
            if ref_t == t:
                self.add("plausibleTemporalAfter", t, f.name,
                         f"CAST(t.`{ref_f}` AS DATE) > {day}", threshold=th)  # fmt: skip
            elif ref_t == "person" and has_person and "person" in self.tables:
                after = _BIRTH if ref_f == "birth_datetime" else f"CAST(__person.`{ref_f}` AS DATE)"
                self.add("plausibleTemporalAfter", t, f.name, f"{after} > {day}",
                         threshold=th, lookups=[_PERSON])  # fmt: skip
            else:
                self.skipped.append(f"{t}.{f.name} plausibleTemporalAfter")
        if has_person and "death" in self.tables:
            late = f"{day} > date_add(__death.death_date, {DEATH_GRACE_DAYS})"
            for check in ("plausibleDuringLife", "plausibleBeforeDeath"):
                if (th := on(check)) is not None:
                    self.add(check, t, f.name, late, threshold=th, lookups=[_DEATH])
        if (th := on("plausibleStartBeforeEnd")) is not None:
            end = row.get("plausibleStartBeforeEndFieldName", "").lower()
            if end:
                self.add("plausibleStartBeforeEnd", t, f.name,
                         f"{day} > CAST(t.`{end}` AS DATE)", threshold=th)  # fmt: skip
        if (th := on("plausibleAfterBirth")) is not None and has_person and "person" in self.tables:
            self.add("plausibleAfterBirth", t, f.name, f"{day} < {_BIRTH}", threshold=th,
                     lookups=[_PERSON])  # fmt: skip

    def _derived_temporal(self, f: OmopField) -> None:
        """Without the DQD files: start before end (``X_start_date`` and ``X_end_date`` of
        one table) and after birth (dates of person-scoped tables), threshold 0."""
        t, c = f.table, f"t.`{f.name}`"
        if f.cdm_type not in ("date", "datetime"):
            return
        names = {x.name for x in FIELDS[t]}
        end = f.name.replace("_start_", "_end_")
        if "_start_" in f.name and end in names:
            self.add("plausibleStartBeforeEnd", t, f.name,
                     f"CAST({c} AS DATE) > CAST(t.`{end}` AS DATE)", threshold=0.0)  # fmt: skip
        if "person_id" in names and t not in ("person", "death") and "person" in self.tables:
            self.add("plausibleAfterBirth", t, f.name, f"CAST({c} AS DATE) < {_BIRTH}",
                     threshold=0.0, lookups=[_PERSON])  # fmt: skip

    def table_checks(self, table: str, row: Mapping[str, str] | None) -> None:
        if row is None or row.get("measurePersonCompleteness") != "Yes" or table == "person":
            return
        if "person" not in self.tables:
            return
        rel = Lookup(alias=f"__has_{table}", table=f"gold.{table}",
                     on=(("t.`person_id`", "person_id"),))  # fmt: skip
        self.add("measurePersonCompleteness", "person", None, f"{rel.alias}.hit IS NULL",
                 threshold=_threshold(row.get("measurePersonCompletenessThreshold")),
                 lookups=[rel], report_table=table)  # fmt: skip

    def concept_checks(self, row: Mapping[str, str]) -> None:
        t, fname = row["cdmTableName"].lower(), row["cdmFieldName"].lower()
        if t not in self.tables or not row.get("conceptId", "").isdigit():
            return
        cid = int(row["conceptId"])
        c = f"t.`{fname}`"
        unit = row.get("unitConceptId", "")
        value_col = "value_as_number"
        names = {x.name for x in FIELDS[t]}
        for check, op in (("plausibleValueLow", "<"), ("plausibleValueHigh", ">")):
            bound = row.get(check, "")
            if not bound or value_col not in names or not unit.isdigit():
                continue
            try:
                float(bound)
            except ValueError:
                continue
            self.add(check, t, fname, f"t.`{value_col}` {op} {bound}",
                     threshold=_threshold(row.get(f"{check}Threshold")),
                     where=f"{c} = {cid} AND t.`unit_concept_id` = {int(unit)}",
                     suffix=f"-{cid}-{unit}")  # fmt: skip
        gender = row.get("plausibleGender", "").lower()
        if gender in GENDER and "person" in self.tables and t != "person":
            self.add("plausibleGender", t, fname,
                     f"__person.gender_concept_id <> {GENDER[gender]}",
                     threshold=_threshold(row.get("plausibleGenderThreshold")),
                     where=f"{c} = {cid}", lookups=[_PERSON], suffix=f"-{cid}")  # fmt: skip


def dqd_rules(th: Thresholds, tables: Sequence[str] | None = None) -> tuple[list[Rule], list[str]]:
    """The DQD checks of ``tables`` (CDM names; default every table of FIELDS) as rules, and
    the checks skipped because their SQL Server expression or reference is not supported."""
    chosen = [t for t in (tables or list(FIELDS)) if t in FIELDS]
    b = _Builder(th, chosen)
    by_field = {(r["cdmTableName"].lower(), r["cdmFieldName"].lower()): r for r in th.fields}
    by_table = {r["cdmTableName"].lower(): r for r in th.tables}
    for t in chosen:
        for f in FIELDS[t]:
            row = by_field.get((t, f.name))
            if th.folder is not None and row is None:
                continue  # a field DQD does not know has no thresholds
            b.field_checks(f, row)
        b.table_checks(t, by_table.get(t))
    for row in th.concepts:
        b.concept_checks(row)
    key = {f"gold.{t}": SPECS[t].keys for t in chosen}
    rules = [replace(r, key=r.key or key.get(r.table, ())) for r in b.rules]
    return rules, b.skipped


def _schema_checks(
    spark: SparkSession, th: Thresholds, tables: Sequence[str], names: Names
) -> list[RuleResult]:
    """cdmTable and cdmField: the table exists and has each CDM field (no scan)."""
    out: list[RuleResult] = []
    b = _Builder(th, tables)
    now = datetime.now(UTC)
    for t in tables:
        physical = names(f"gold.{t}")
        exists = bool(spark.catalog.tableExists(physical))
        b.add("cdmTable", t, None, "FALSE", threshold=0.0)
        out.append(RuleResult(b.rules[-1], "pass" if exists else "fail", rows_checked=1,
                              rows_failing=0 if exists else 1, executed_at=now))  # fmt: skip
        have = {c.lower() for c in spark.table(physical).columns} if exists else set()
        for f in FIELDS[t]:
            b.add("cdmField", t, f.name, "FALSE", threshold=0.0)
            if not exists:
                out.append(RuleResult(b.rules[-1], "not_applicable", executed_at=now,
                                      message="table does not exist"))  # fmt: skip
                continue
            ok = f.name in have
            out.append(RuleResult(b.rules[-1], "pass" if ok else "fail", rows_checked=1,
                                  rows_failing=0 if ok else 1, executed_at=now))  # fmt: skip
    return out


def run_dqd(
    spark: SparkSession,
    settings: Settings,
    *,
    tables: Sequence[str] | None = None,
    table_names: Mapping[str, str] | None = None,
    run_id: str | None = None,
    write: bool = True,
    outputs: Outputs = DEFAULT_OUTPUTS,
) -> QualityReport:
    """Run the DQD checks over gold (``tables``: CDM table names, default all of FIELDS)
    and record them in ``dq.results``. ``table_names`` maps ``gold.<table>`` to the tables
    to read (tests)."""
    th = load_thresholds(settings.quality.dqd_thresholds_dir)
    chosen = [t for t in (tables or list(FIELDS)) if t in FIELDS]
    names = Names(table_names)
    rules, _skipped = dqd_rules(th, chosen)
    engine = Engine(spark, names=names, keys={}, sample_keys=settings.quality.sample_keys)
    results = _schema_checks(spark, th, chosen, names) + engine.run(rules)
    report = QualityReport(run_id or str(uuid.uuid4()), "dqd", results)
    if write:
        write_report(spark, report, outputs)
    return report
