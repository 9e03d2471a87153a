"""The assistant's data tools: guarded, audited reads of silver through the access service.

Every tool builds one read-only SELECT, pins each table it reads at its current Delta
version (``VERSION AS OF``), and runs it with :meth:`AccessService.query` as the signed-in
user: the policy's row and column rules apply, a named patient outside the user's scope is
refused (``LH-SEC-006``) and every read or refusal is in the audit log. Each row comes back
with the citation of the row it is (``table@version:key``). Literals are built by sqlglot,
never by string pasting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from sqlglot import exp

from lakehouse.governance.access import AccessService
from lakehouse.governance.sessions import Principal
from lakehouse.tables.silver.clinical import DIAGNOSIS, LAB_RESULT, MEDICATION_ORDER
from lakehouse.tables.silver.encounter import ENCOUNTER
from lakehouse.tables.silver.patient import PATIENT
from lakehouse.tables.spec import TableSpec
from lakehouse.terminology import ATC, ICD10, LOINC
from serving.assistant.citations import Citation
from serving.sql import col, delta_version, pinned_table, string

PURPOSE = "treatment"


@dataclass(frozen=True)
class ToolTables:
    """The silver tables the tools read (tests and other deployments pass renamed specs)."""

    patient: TableSpec = PATIENT
    encounter: TableSpec = ENCOUNTER
    lab_result: TableSpec = LAB_RESULT
    medication_order: TableSpec = MEDICATION_ORDER
    diagnosis: TableSpec = DIAGNOSIS

    def all(self) -> tuple[TableSpec, ...]:
        return (
            self.patient,
            self.encounter,
            self.lab_result,
            self.medication_order,
            self.diagnosis,
        )

    def by_name(self) -> dict[str, TableSpec]:
        return {t.name: t for t in self.all()}


@dataclass(frozen=True)
class CitedRow:
    """One row a tool returned and the citation of the record it came from."""

    citation: Citation
    values: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """What a tool call returned: rows, newest first where the tool orders by time."""

    tool: str
    rows: list[CitedRow] = field(default_factory=list)

    @property
    def citations(self) -> list[str]:
        return [str(r.citation) for r in self.rows]


_LAB_COLUMNS = (
    "patient_id",
    "test_standard_code",
    "test_standard_name",
    "test_source_name",
    "value_std",
    "unit_std",
    "value_as_number",
    "unit_source",
    "value_source",
    "reference_range_source",
    "abnormal_flag",
    "result_status",
    "collected_at",
)
_MED_COLUMNS = (
    "patient_id",
    "drug_standard_code",
    "drug_standard_name",
    "drug_source_name",
    "dose",
    "dose_unit",
    "route",
    "frequency",
    "status",
    "ordered_at",
)
_DX_COLUMNS = (
    "patient_id",
    "standard_code",
    "standard_name",
    "source_name",
    "diagnosis_type",
    "is_primary",
    "clinical_status",
    "diagnosed_at",
)
_PATIENT_COLUMNS = ("patient_id", "name", "sex_code", "birth_date")


class DataTools:
    """The tools, for one service process (one Spark session, one access service)."""

    def __init__(
        self,
        spark: SparkSession,
        access: AccessService,
        tables: ToolTables | None = None,
        *,
        max_rows: int = 50,
    ) -> None:
        self.spark, self.access = spark, access
        self.tables = tables or ToolTables()
        self.max_rows = max_rows

    # -- tools ---------------------------------------------------------------------------
    def find_patient(
        self, who: Principal, *, mrn: str | None = None, visit: str | None = None
    ) -> ToolResult:
        """The patient records of an MRN, or of the patient a visit number belongs to."""
        if mrn is None and visit is not None:
            enc = self._select(
                who,
                "find_patient",
                self.tables.encounter,
                ("patient_id", "start_at"),
                _col("encounter_id").eq(_str(visit)),
                order="start_at",
            )
            ids = sorted({r.values["patient_id"] for r in enc.rows if r.values["patient_id"]})
            if not ids:
                return ToolResult("find_patient")
            mrn = ids[0]
        if mrn is None:
            return ToolResult("find_patient")
        return self._select(
            who,
            "find_patient",
            self.tables.patient,
            _PATIENT_COLUMNS,
            _col("patient_id").eq(_str(mrn)),
        )

    def labs(
        self,
        who: Principal,
        patient_id: str,
        *,
        loinc: Sequence[str] = (),
        since: datetime | None = None,
        latest: bool = False,
    ) -> ToolResult:
        """Lab results of a patient, by LOINC code, newest first."""
        cond = _col("test_standard_vocabulary").eq(_str(LOINC))
        return self._clinical(
            who,
            "labs",
            self.tables.lab_result,
            _LAB_COLUMNS,
            patient_id,
            "test_standard_code",
            loinc,
            "collected_at",
            since,
            latest,
            cond,
        )

    def medications(
        self,
        who: Principal,
        patient_id: str,
        *,
        atc: Sequence[str] = (),
        since: datetime | None = None,
        latest: bool = False,
    ) -> ToolResult:
        """Medication orders of a patient (optionally of some ATC drugs), newest first."""
        cond = _col("drug_standard_vocabulary").eq(_str(ATC)) if atc else None
        return self._clinical(
            who,
            "medications",
            self.tables.medication_order,
            _MED_COLUMNS,
            patient_id,
            "drug_standard_code",
            atc,
            "ordered_at",
            since,
            latest,
            cond,
        )

    def diagnoses(
        self,
        who: Principal,
        patient_id: str,
        *,
        icd10: Sequence[str] = (),
        since: datetime | None = None,
        latest: bool = False,
    ) -> ToolResult:
        """Diagnoses of a patient (optionally of some ICD-10 codes), newest first."""
        cond = _col("standard_vocabulary").eq(_str(ICD10)) if icd10 else None
        return self._clinical(
            who,
            "diagnoses",
            self.tables.diagnosis,
            _DX_COLUMNS,
            patient_id,
            "standard_code",
            icd10,
            "diagnosed_at",
            since,
            latest,
            cond,
        )

    def cited_row(self, who: Principal, citation: Citation) -> dict[str, Any] | None:
        """The cited row at the cited version, as ``who`` may see it (audited); None when
        it is not there, not visible, or the version does not exist (any more)."""
        spec = self.tables.by_name()[citation.table]
        if citation.version > self._version(spec.name):
            return None
        keys = zip(spec.keys, citation.key, strict=True)
        where = exp.and_(*[_col(k).eq(_str(v)) for k, v in keys])
        query = exp.select("*").from_(_table(spec, citation.version)).where(where).limit(2)
        try:
            rows = self.access.query(who, query.sql(dialect="spark"), purpose=PURPOSE, limit=2)
        except AnalysisException:  # the version was vacuumed away
            return None
        return dict(rows[0].asDict()) if len(rows) == 1 else None

    # -- helpers -------------------------------------------------------------------------
    def key_widths(self) -> dict[str, int]:
        return {t.name: len(t.keys) for t in self.tables.all()}

    def _clinical(
        self,
        who: Principal,
        tool: str,
        spec: TableSpec,
        columns: Sequence[str],
        patient_id: str,
        code_column: str,
        codes: Sequence[str],
        time_column: str,
        since: datetime | None,
        latest: bool,
        extra: exp.Expr | None,
    ) -> ToolResult:
        parts: list[exp.Expr] = [_col("patient_id").eq(_str(patient_id))]
        if codes:
            parts.append(_col(code_column).isin(*[_str(c) for c in codes]))
        if extra is not None:
            parts.append(extra)
        if since is not None:
            parts.append(_col(time_column) >= exp.cast(_str(since.isoformat(sep=" ")), "timestamp"))
        return self._select(
            who,
            tool,
            spec,
            columns,
            exp.and_(*parts),
            order=time_column,
            limit=1 if latest else None,
        )

    def _select(
        self,
        who: Principal,
        tool: str,
        spec: TableSpec,
        columns: Sequence[str],
        where: exp.Expr,
        *,
        order: str | None = None,
        limit: int | None = None,
    ) -> ToolResult:
        version = self._version(spec.name)
        cols = list(dict.fromkeys([*spec.keys, *columns]))
        live = exp.or_(_col("is_deleted").is_(exp.null()), exp.not_(_col("is_deleted")))
        query = exp.select(*[_col(c) for c in cols]).from_(_table(spec, version))
        query = query.where(exp.and_(where, live))
        if order is not None:
            query = query.order_by(exp.Ordered(this=_col(order), desc=True, nulls_first=False))
        n = min(limit or self.max_rows, self.max_rows)
        rows = self.access.query(who, query.sql(dialect="spark"), purpose=PURPOSE, limit=n)
        out = []
        for r in rows:
            values = dict(r.asDict())
            key = tuple(str(values[k]) for k in spec.keys)
            out.append(CitedRow(Citation(spec.name, version, key), values))
        return ToolResult(tool, out)

    def _version(self, name: str) -> int:
        return delta_version(self.spark, name)


def _col(name: str) -> exp.Column:
    return col(name)


def _str(value: str) -> exp.Literal:
    return string(value)


def _table(spec: TableSpec, version: int) -> exp.Table:
    """``schema.table VERSION AS OF version`` (names come from specs, never from users)."""
    return pinned_table(spec.schema_name, spec.table_name, version)
