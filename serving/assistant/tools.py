"""The assistant's data tools: guarded, audited reads of silver through the access service.

Every tool builds one read-only SELECT, pins each table it reads at its current Delta
version (``VERSION AS OF``), and runs it with :meth:`AccessService.query` as the signed-in
user: the policy's row and column rules apply, a named patient outside the user's scope is
refused (``LH-SEC-006``) and every read or refusal is in the audit log. Each row comes back
with the citation of the row it is (``table@version:key``). Literals are built by sqlglot,
never by string pasting.

``notes`` searches a patient's notes (the newest :attr:`DataTools.max_notes`, read the same
guarded way and ranked in memory by :mod:`serving.assistant.note_search`); its hits cite a
span of the note's text (``table@version:key:start-end``). A role granted free text reads
``silver.note.note_text``; any other role reads the de-identified ``silver.note_deid.text_deid``
of the note's current version, and the guard decides whether it may (it refuses a table it
cannot scope for the role). ``timeline`` merges the other tools' rows and the patient's
encounters by time. ``cohort_count`` counts the distinct patients in the user's scope with
a diagnosis (ICD-10 prefix) and/or a lab result condition: one guarded aggregate query
naming no patient (audited without patient refs), only the number comes back.

``imaging`` reads a patient's imaging reports (``silver.note`` rows of a radiology type, or
their de-identified text, the same guarded way as ``notes``; each cited by the span of its
findings/impression sections, ``table@version:key:start-end``) and imaging studies
(``silver.imaging_study``: modality, body part, description, study date; cited by row),
optionally of one modality (a report of another visit is kept only when its text names
the modality).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from sqlglot import exp

from lakehouse.errors import ErrorCode, LakehouseError
from lakehouse.governance.access import AccessService
from lakehouse.governance.sessions import Principal
from lakehouse.tables.silver.clinical import DIAGNOSIS, LAB_RESULT, MEDICATION_ORDER
from lakehouse.tables.silver.documents import NOTE
from lakehouse.tables.silver.encounter import ENCOUNTER
from lakehouse.tables.silver.imaging import IMAGING_STUDY
from lakehouse.tables.silver.note_nlp import NOTE_DEID
from lakehouse.tables.silver.patient import PATIENT
from lakehouse.tables.silver.person_index import PERSON_FEATURES
from lakehouse.tables.spec import TableSpec
from lakehouse.terminology import ATC, ICD10, LOINC
from serving.assistant.citations import Citation
from serving.assistant.note_search import NoteRanker
from serving.sql import col, delta_version, pinned_table, string

PURPOSE = "treatment"
#: The purpose an interface account's reads are audited with (ADR 0032).
EXCHANGE = "exchange"


def purpose_of(who: Principal) -> str:
    """The purpose of use audited for ``who``'s reads: ``exchange`` for the ``exporter``
    role (disclosure to another system), ``treatment`` for everyone else."""
    return EXCHANGE if who.role == "exporter" else PURPOSE


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
class LabCondition:
    """A lab result condition of a cohort: LOINC code, comparison and value (in the
    analyte's canonical unit, ``value_std``)."""

    loinc: str
    op: str  # one of > >= < <=
    value: float


@dataclass(frozen=True)
class CohortCount:
    """How many distinct patients (institution, MRN) in the user's scope match; and the
    tables read, as ``table@version``."""

    patients: int
    sources: tuple[str, ...]


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


@dataclass(frozen=True)
class CohortList:
    """The patients of a cohort the user may see: ``patients`` in all, and the records
    that put the first of them in it (one row per criterion and patient, each cited, with
    ``criterion``: diagnosis or lab); the tables read, as ``table@version``."""

    patients: int
    result: ToolResult
    sources: tuple[str, ...]


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
_ENCOUNTER_COLUMNS = (
    "patient_id",
    "encounter_id",
    "encounter_class",
    "status",
    "dept_name",
    "start_at",
    "end_at",
)
_NOTE_COLUMNS = ("patient_id", "note_id", "note_type", "language", "recorded_at")
#: The text column of each note table (by the table's role, not its name).
NOTE_TEXT, DEID_TEXT = "note_text", "text_deid"
_STUDY_COLUMNS = (
    "patient_id",
    "encounter_id",
    "accession_number",
    "modalities",
    "study_description",
    "body_part",
    "study_at",
)
#: What a cohort list shows of a patient's qualifying records (besides keys and MRN), and
#: the time that picks the newest of them.
_COHORT_DX = ("standard_code", "standard_name", "source_name", "diagnosed_at")
_COHORT_LAB = (
    "test_standard_code",
    "test_standard_name",
    "test_source_name",
    "value_std",
    "unit_std",
    "abnormal_flag",
    "collected_at",
)
_COHORT_TIME = {"d": "diagnosed_at", "l": "collected_at"}
#: ``note_type`` (lower case) of an imaging report: the landed file's kind, or the text of
#: a FHIR DocumentReference's type.
REPORT_TYPES = ("radiology", "radiology report", "imaging", "imaging report", "影像检查报告")
#: Modalities by the name a question or a model uses: the DICOM modality codes of its
#: studies, and the words a report's text names it by.
MODALITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "CT": (("CT",), ("CT", "计算机断层")),
    "MR": (("MR",), ("MRI", "MR", "磁共振")),
    "XR": (("CR", "DX", "DR"), ("X线", "X-ray", "radiograph", "胸片", "平片")),
    "US": (("US",), ("超声", "B超", "ultrasound")),
}
_MODALITY_NAMES = {
    "ct": "CT", "mr": "MR", "mri": "MR", "磁共振": "MR", "核磁": "MR", "xr": "XR",
    "x-ray": "XR", "xray": "XR", "x线": "XR", "cr": "XR", "dx": "XR", "dr": "XR",
    "radiograph": "XR", "胸片": "XR", "平片": "XR", "us": "US", "ultrasound": "US",
    "超声": "US", "b超": "US",
}  # fmt: skip
#: A report's findings/impression section header at the start of a line.
_REPORT_HEADER = re.compile(
    r"^[ \t]*(?:检查所见|影像所见|影像表现|所见|印象|影像诊断|诊断意见|检查结论|结论"
    r"|findings|impression|conclusions?)[ \t]*[：:]",
    re.IGNORECASE | re.MULTILINE,
)
_ANY_HEADER = re.compile(r"^[ \t]*[^\s：:]{1,16}[ \t]*[：:]", re.MULTILINE)
#: The longest report span cited when the text has no findings/impression header.
_REPORT_MAX = 400
#: Timeline items: tool, time column.
_TIMELINE = (
    ("encounter", "start_at"),
    ("diagnosis", "diagnosed_at"),
    ("medication", "ordered_at"),
    ("lab", "collected_at"),
    ("imaging", "at"),
)


class DataTools:
    """The tools, for one service process (one Spark session, one access service)."""

    def __init__(
        self,
        spark: SparkSession,
        access: AccessService,
        tables: ToolTables | None = None,
        *,
        max_rows: int = 50,
        max_notes: int = 200,
        ranker: NoteRanker | None = None,
    ) -> None:
        self.spark, self.access = spark, access
        self.tables = tables or ToolTables()
        self.max_rows, self.max_notes = max_rows, max_notes
        self.ranker = ranker or NoteRanker()  # serve.note_search (BM25 unless configured)
        # The note tables: those of a ToolTables subclass that names them (FhirTables), else
        # the silver ones.
        self.note: TableSpec = getattr(self.tables, "note", NOTE)
        self.note_deid: TableSpec = getattr(self.tables, "note_deid", NOTE_DEID)
        self.imaging_study: TableSpec = getattr(self.tables, "imaging_study", IMAGING_STUDY)
        #: The EMPI's comparison features (normalized name, pinyin), for name search.
        self.person_features: TableSpec = getattr(self.tables, "person_features", PERSON_FEATURES)

    # -- tools ---------------------------------------------------------------------------
    def find_patient(
        self,
        who: Principal,
        *,
        mrn: str | None = None,
        visit: str | None = None,
        name: str | None = None,
    ) -> ToolResult:
        """The patient records of an MRN, of the patient a visit number belongs to, or of
        the patients of this name that ``who`` may see (the row filter decides: a
        department's or care team's patients; a role that may not see names is refused,
        ``LH-SEC-006``). By name: where the EMPI's features exist, the name as written,
        in simplified characters or spelled in pinyin ("Wang Fang", "王芳", "王 芳"); the
        exact ones when there are, else those of the same pinyin (another character of
        the same sound: the answer lists them to choose from)."""
        if mrn is None and visit is None and name is not None and name.strip():
            if self._has(self.person_features):
                return self._patients_named(who, name.strip())
            return self._select(
                who,
                "find_patient",
                self.tables.patient,
                _PATIENT_COLUMNS,
                _col("name").eq(_str(name.strip())),
                order="birth_date",
            )
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

    def _patients_named(self, who: Principal, name: str) -> ToolResult:
        """``silver.patient`` rows joined to their ``silver.person_features`` row by record,
        whose name is ``name`` (as written or normalized) or sounds like it (the same
        toneless pinyin); one guarded query, both tables pinned."""
        from lakehouse.empi.names import name_key, pinyin_key

        patient, features = self.tables.patient, self.person_features
        vp, vf = self._version(patient.name), self._version(features.name)
        key = name_key(name)
        said: exp.Expr = _col("name", "p").eq(_str(name))
        if key is not None:
            said = exp.or_(said, _col("name_s", "f").eq(_str(key)))
        sounds = pinyin_key(name)
        where = exp.or_(said, _col("name_py", "f").eq(_str(sounds))) if sounds else said
        on = exp.and_(*[_col(k, "p").eq(_col(k, "f")) for k in patient.keys])
        cols = list(dict.fromkeys([*patient.keys, *_PATIENT_COLUMNS]))
        query = (
            exp.select(*[_col(c, "p") for c in cols], exp.alias_(said, "exact"))
            .from_(_table(patient, vp).as_("p"))
            .join(_table(features, vf).as_("f"), on=on)
            .where(exp.and_(where, _live("p")))
            .order_by(exp.Ordered(this=_col("birth_date", "p"), desc=True, nulls_first=False))
        )
        rows = self.access.query(
            who, query.sql(dialect="spark"), purpose=PURPOSE, limit=self.max_rows
        )
        found = [dict(r.asDict()) for r in rows]
        if any(v["exact"] for v in found):
            found = [v for v in found if v["exact"]]
        out = []
        for values in found:
            values.pop("exact")
            key_of = tuple(str(values[k]) for k in patient.keys)
            out.append(CitedRow(Citation(patient.name, vp, key_of), values))
        return ToolResult("find_patient", out)

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

    def notes(
        self,
        who: Principal,
        patient_id: str,
        query: str,
        *,
        since: datetime | None = None,
        limit: int = 5,
    ) -> ToolResult:
        """The patient's notes that match ``query`` (BM25, Chinese and English), best
        first, each cited by the span of its text that holds the matches. Reads the newest
        :attr:`max_notes` notes (since ``since``) the user may see: the note text where the
        role is granted free text, else the de-identified text (the guard decides)."""
        deid = NOTE_TEXT not in self.access.guard.policy.visible_columns(who.role, self.note)
        if deid:
            result = self._deid_notes(who, patient_id, since)
            text_column = DEID_TEXT
        else:
            parts: list[exp.Expr] = [_col("patient_id").eq(_str(patient_id))]
            if since is not None:
                parts.append(_after("recorded_at", since))
            result = self._select(
                who,
                "notes",
                self.note,
                (*_NOTE_COLUMNS, NOTE_TEXT),
                exp.and_(*parts),
                order="recorded_at",
                limit=self.max_notes,
                cap=self.max_notes,
            )
            text_column = NOTE_TEXT
        texts = [r.values.get(text_column) for r in result.rows]
        rows = []
        for hit in self.ranker.rank(texts, query, limit=max(1, min(limit, self.max_rows))):
            row = result.rows[hit.index]
            values = {k: v for k, v in row.values.items() if k != text_column}
            values.update(
                snippet=hit.text,
                start=hit.start,
                end=hit.end,
                match_spans=[list(s) for s in hit.spans],
                score=hit.score,
                deidentified=deid,
            )
            rows.append(CitedRow(_with_span(row.citation, hit.start, hit.end), values))
        return ToolResult("notes", rows)

    def imaging(
        self,
        who: Principal,
        patient_id: str,
        *,
        modality: str | None = None,
        since: datetime | None = None,
        latest: bool = False,
    ) -> ToolResult:
        """The patient's imaging reports and studies, newest first (``kind`` ``report`` or
        ``study``, ``at`` their time): each report (a radiology note, its text read as
        :meth:`notes` reads it) cited by the span of its findings/impression sections, with
        that text as ``report``; each study of ``silver.imaging_study`` cited by row. With
        ``modality`` (a :data:`MODALITIES` name), only its studies, and the reports of their
        visits or naming the modality; ``latest``: the newest report and the newest study.
        ValueError for an unknown modality. Two guarded, audited reads; a table the
        lakehouse does not have (no notes or no PACS landed yet) holds nothing, and a role
        refused the report tables (not the patient) gets the studies alone."""
        key = modality_of(modality) if modality else None
        if modality and key is None:
            raise ValueError(f"the modality is one of {', '.join(MODALITIES)}")
        study_parts: list[exp.Expr] = [_col("patient_id").eq(_str(patient_id))]
        if key is not None:
            study_parts.append(
                exp.or_(
                    *[
                        exp.ArrayContains(this=_col("modalities"), expression=_str(code))
                        for code in MODALITIES[key][0]
                    ]
                )
            )
        if since is not None:
            study_parts.append(_after("study_at", since))
        have_studies = self._exists(self.imaging_study)
        studies = (  # first: this read refuses a patient outside the user's scope
            self._select(
                who,
                "imaging",
                self.imaging_study,
                _STUDY_COLUMNS,
                exp.and_(*study_parts),
                order="study_at",
            )
            if have_studies
            else ToolResult("imaging")
        )
        deid = NOTE_TEXT not in self.access.guard.policy.visible_columns(who.role, self.note)
        try:
            reports = self._reports(who, patient_id, since, deid=deid)
        except LakehouseError as exc:
            # The patient is in scope (the study read said so): the role may not read the
            # report tables (the default policy's nurse and silver.note_deid). The refusal
            # is audited; the studies are still the user's to see.
            if exc.code is not ErrorCode.ACCESS_DENIED or not have_studies:
                raise
            reports = ToolResult("imaging")
        rows = imaging_rows(
            reports, studies, text_column=DEID_TEXT if deid else NOTE_TEXT, modality=key
        )
        if latest:
            rows = _newest_of_each_kind(rows)
        return ToolResult("imaging", rows.rows[: self.max_rows])

    def _reports(
        self, who: Principal, patient_id: str, since: datetime | None, *, deid: bool
    ) -> ToolResult:
        """The patient's radiology notes (the newest :attr:`max_rows`): the note text, or
        for ``deid`` the de-identified text; nothing when the tables are not there."""
        if not self._exists(self.note, *((self.note_deid,) if deid else ())):
            return ToolResult("imaging")
        if deid:
            types = exp.Lower(this=_col("note_type", "n")).isin(*[_str(t) for t in REPORT_TYPES])
            return self._deid_notes(who, patient_id, since, types, tool="imaging")
        types = exp.Lower(this=_col("note_type")).isin(*[_str(t) for t in REPORT_TYPES])
        parts: list[exp.Expr] = [_col("patient_id").eq(_str(patient_id)), types]
        if since is not None:
            parts.append(_after("recorded_at", since))
        return self._select(
            who,
            "imaging",
            self.note,
            (*_NOTE_COLUMNS, "encounter_id", NOTE_TEXT),
            exp.and_(*parts),
            order="recorded_at",
            limit=self.max_rows,
        )

    def timeline(
        self,
        who: Principal,
        patient_id: str,
        *,
        since: datetime | None = None,
        limit: int = 50,
    ) -> ToolResult:
        """The patient's encounters, diagnoses, medication orders, lab results and imaging
        (reports and studies), newest first, merged by time (each row cited, with ``kind``
        and ``at`` added); at most ``limit`` items. Every part is its own guarded, audited
        read."""
        parts: list[exp.Expr] = [_col("patient_id").eq(_str(patient_id))]
        if since is not None:
            parts.append(_after("start_at", since))
        results = {
            "encounter": self._select(
                who,
                "timeline",
                self.tables.encounter,
                _ENCOUNTER_COLUMNS,
                exp.and_(*parts),
                order="start_at",
            ),
            "diagnosis": self.diagnoses(who, patient_id, since=since),
            "medication": self.medications(who, patient_id, since=since),
            "lab": self.labs(who, patient_id, since=since),
            "imaging": self.imaging(who, patient_id, since=since),
        }
        return merge_timeline(results, limit=min(limit, self.max_rows))

    def cohort_count(
        self,
        who: Principal,
        *,
        icd10: Sequence[str] = (),
        lab: LabCondition | None = None,
        since: datetime | None = None,
    ) -> CohortCount:
        """Distinct patients the user may see with a diagnosis whose ICD-10 code starts
        with one of ``icd10`` and/or a lab result meeting ``lab`` (since ``since``): one
        guarded ``COUNT(DISTINCT institution, patient)``; the row filter scopes it, no
        patient id is named or returned. ValueError for a malformed code or comparison."""
        froms, versions = self._cohort(icd10, lab, since)
        a = froms[0][1]
        key = [_col("institution_code", a), _col("patient_id", a)]
        count = exp.Count(this=exp.Distinct(expressions=key))
        query = _cohort_select(froms, versions, exp.alias_(count, "patients"))
        rows = self.access.query(who, query.sql(dialect="spark"), purpose=PURPOSE, limit=1)
        n = int(rows[0]["patients"]) if rows else 0
        return CohortCount(n, tuple(f"{k}@{v}" for k, v in versions.items()))

    def cohort_list(
        self,
        who: Principal,
        *,
        icd10: Sequence[str] = (),
        lab: LabCondition | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> CohortList:
        """The patients :meth:`cohort_count` counts, listed: per patient (institution,
        MRN order) the newest record meeting each criterion, cited by its row (a
        diagnosis row, a lab row, or both), at most ``limit`` (default ``max_rows``)
        patients, with the total in the user's scope. One guarded query (a window picks
        each patient's newest records, a second window counts the patients); the read is
        audited with one event per patient returned."""
        froms, versions = self._cohort(icd10, lab, since)
        columns = {"d": _COHORT_DX, "l": _COHORT_LAB}
        a = froms[0][1]
        select: list[exp.Expr] = []
        order: list[exp.Expr] = []
        for spec, b, _ in froms:
            for c in dict.fromkeys([*spec.keys, "patient_id", *columns[b]]):
                select.append(exp.alias_(_col(c, b), f"{b}_{c}"))
            time = _COHORT_TIME[b]
            order.append(exp.Ordered(this=_col(time, b), desc=True, nulls_first=False))
            order += [exp.Ordered(this=_col(k, b)) for k in spec.keys]
        newest = exp.Window(
            this=exp.RowNumber(),
            partition_by=[_col("institution_code", a), _col("patient_id", a)],
            order=exp.Order(expressions=order),
        )
        inner = _cohort_select(froms, versions, *select, exp.alias_(newest, "rn"))
        total = exp.Window(this=exp.Count(this=exp.Star()))
        query = (
            exp.select(exp.Star(), exp.alias_(total, "total"))
            .from_(inner.subquery("c"))
            .where(exp.column("rn").eq(exp.Literal.number(1)))
            .order_by(exp.column(f"{a}_institution_code"), exp.column(f"{a}_patient_id"))
        )
        n = min(limit or self.max_rows, self.max_rows)
        rows = self.access.query(
            who,
            query.sql(dialect="spark"),
            purpose=PURPOSE,
            limit=n,
            patients_in=f"{a}_patient_id",
        )
        out: list[CitedRow] = []
        for r in rows:
            values = dict(r.asDict())
            for spec, b, _ in froms:
                mine = {c[len(b) + 1 :]: v for c, v in values.items() if c.startswith(f"{b}_")}
                key = tuple(str(mine[k]) for k in spec.keys)
                mine["criterion"] = "diagnosis" if b == "d" else "lab"
                out.append(CitedRow(Citation(spec.name, versions[spec.name], key), mine))
        total_n = int(rows[0]["total"]) if rows else 0
        sources = tuple(f"{k}@{v}" for k, v in versions.items())
        return CohortList(total_n, ToolResult("cohort_list", out), sources)

    def _cohort(
        self, icd10: Sequence[str], lab: LabCondition | None, since: datetime | None
    ) -> tuple[list[tuple[TableSpec, str, list[exp.Expr]]], dict[str, int]]:
        """A cohort's tables (diagnosis ``d`` and/or lab result ``l``), each with its
        conditions, and the version each is pinned at; ValueError for a malformed code or
        comparison."""
        if not icd10 and lab is None:
            raise ValueError("a cohort needs a diagnosis or a lab condition")
        if any(not ICD10_PREFIX.match(c) for c in icd10):
            raise ValueError("ICD-10 prefixes look like E11 or E11.9")
        if lab is not None and lab.op not in OPS:
            raise ValueError("the comparison is one of > >= < <=")
        froms: list[tuple[TableSpec, str, list[exp.Expr]]] = []
        if icd10:
            likes = [
                exp.Like(this=_col("standard_code", "d"), expression=_str(f"{c}%")) for c in icd10
            ]
            parts: list[exp.Expr] = [
                _col("standard_vocabulary", "d").eq(_str(ICD10)),
                exp.or_(*likes),
            ]
            if since is not None:
                parts.append(_after("diagnosed_at", since, "d"))
            froms.append((self.tables.diagnosis, "d", parts))
        if lab is not None:
            parts = [
                _col("test_standard_vocabulary", "l").eq(_str(LOINC)),
                _col("test_standard_code", "l").eq(_str(lab.loinc)),
                OPS[lab.op](this=_col("value_std", "l"), expression=exp.Literal.number(lab.value)),
            ]
            if since is not None:
                parts.append(_after("collected_at", since, "l"))
            froms.append((self.tables.lab_result, "l", parts))
        versions = {spec.name: self._version(spec.name) for spec, _, _ in froms}
        return froms, versions

    def span_tables(self) -> frozenset[str]:
        """Tables whose citations carry a span of their text."""
        return frozenset({self.note.name, self.note_deid.name})

    def cited_row(self, who: Principal, citation: Citation) -> dict[str, Any] | None:
        """The cited row at the cited version, as ``who`` may see it (audited); None when
        it is not there, not visible, or the version does not exist (any more). For a span
        citation of a note, the row and ``span_text``, the cited span of its text (None
        when the span is not inside the text the user may see)."""
        spec = self._specs()[citation.table]
        if citation.version > self._version(spec.name):
            return None
        keys = zip(spec.keys, citation.key, strict=True)
        where = exp.and_(*[_col(k).eq(_str(v)) for k, v in keys])
        query = exp.select("*").from_(_table(spec, citation.version)).where(where).limit(2)
        try:
            rows = self.access.query(who, query.sql(dialect="spark"), purpose=PURPOSE, limit=2)
        except AnalysisException:  # the version was vacuumed away
            return None
        if len(rows) != 1:
            return None
        row = dict(rows[0].asDict())
        if citation.span is not None:
            start, end = citation.span
            text = row.get(DEID_TEXT if spec.name == self.note_deid.name else NOTE_TEXT)
            inside = isinstance(text, str) and end <= len(text)
            row["span"] = [start, end]
            row["span_text"] = text[start:end] if inside and isinstance(text, str) else None
        return row

    # -- helpers -------------------------------------------------------------------------
    def key_widths(self) -> dict[str, int]:
        return {t.name: len(t.keys) for t in self._specs().values()}

    def _specs(self) -> dict[str, TableSpec]:
        return {
            **self.tables.by_name(),
            self.note.name: self.note,
            self.note_deid.name: self.note_deid,
            self.imaging_study.name: self.imaging_study,
        }

    def _deid_notes(
        self,
        who: Principal,
        patient_id: str,
        since: datetime | None,
        extra: exp.Expr | None = None,
        *,
        tool: str = "notes",
    ) -> ToolResult:
        """The de-identified text of the patient's newest notes (those meeting ``extra``,
        a condition on ``n``): ``silver.note_deid`` of each note's current version, joined
        to ``silver.note`` for the patient and the time (both pinned; the guard scopes both
        and refuses what it cannot scope)."""
        note, deid = self.note, self.note_deid
        vn, vd = self._version(note.name), self._version(deid.name)
        on = exp.and_(*[_col(k, "d").eq(_col(k, "n")) for k in (*deid.keys, "source_updated_at")])
        parts: list[exp.Expr] = [_col("patient_id", "n").eq(_str(patient_id)), _live("n")]
        if since is not None:
            parts.append(_after("recorded_at", since, "n"))
        if extra is not None:
            parts.append(extra)
        select = [
            *[_col(k, "d") for k in deid.keys],
            _col("patient_id", "n"),
            _col("note_type", "n"),
            _col("language", "n"),
            _col("recorded_at", "n"),
            _col("encounter_id", "n"),
            _col(DEID_TEXT, "d"),
        ]
        query = (
            exp.select(*select)
            .from_(_table(deid, vd).as_("d"))
            .join(_table(note, vn).as_("n"), on=on)
            .where(exp.and_(*parts))
            .order_by(exp.Ordered(this=_col("recorded_at", "n"), desc=True, nulls_first=False))
        )
        rows = self.access.query(
            who, query.sql(dialect="spark"), purpose=PURPOSE, limit=self.max_notes
        )
        out = []
        for r in rows:
            values = dict(r.asDict())
            key = tuple(str(values[k]) for k in deid.keys)
            out.append(CitedRow(Citation(deid.name, vd, key), values))
        return ToolResult(tool, out)

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
            parts.append(_after(time_column, since))
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
        cap: int | None = None,
    ) -> ToolResult:
        version = self._version(spec.name)
        cols = list(dict.fromkeys([*spec.keys, *columns]))
        live = exp.or_(_col("is_deleted").is_(exp.null()), exp.not_(_col("is_deleted")))
        query = exp.select(*[_col(c) for c in cols]).from_(_table(spec, version))
        query = query.where(exp.and_(where, live))
        if order is not None:
            query = query.order_by(exp.Ordered(this=_col(order), desc=True, nulls_first=False))
        n = min(limit or self.max_rows, cap or self.max_rows)
        rows = self.access.query(who, query.sql(dialect="spark"), purpose=PURPOSE, limit=n)
        out = []
        for r in rows:
            values = dict(r.asDict())
            key = tuple(str(values[k]) for k in spec.keys)
            out.append(CitedRow(Citation(spec.name, version, key), values))
        return ToolResult(tool, out)

    def _exists(self, *specs: TableSpec) -> bool:
        return all(self.spark.catalog.tableExists(s.name) for s in specs)

    def _has(self, spec: TableSpec) -> bool:
        """Whether the access service knows ``spec`` and the lakehouse holds it (the EMPI's
        features exist once the EMPI job ran)."""
        return spec.name in self.access.guard.catalog and self._exists(spec)

    def _version(self, name: str) -> int:
        return delta_version(self.spark, name)


def _cohort_select(
    froms: Sequence[tuple[TableSpec, str, list[exp.Expr]]],
    versions: dict[str, int],
    *select: exp.Expr,
) -> exp.Select:
    """``SELECT select`` from a cohort's pinned tables (:meth:`DataTools._cohort`), joined
    on the patient, where every table's conditions hold and no row is tombstoned."""
    (first, a, where), rest = froms[0], froms[1:]
    query = exp.select(*select).from_(_table(first, versions[first.name]).as_(a))
    conds = [*where, _live(a)]
    for spec, b, more in rest:
        query = query.join(_table(spec, versions[spec.name]).as_(b), on=_same_patient(a, b))
        conds += [*more, _live(b)]
    return query.where(exp.and_(*conds))


def _same_patient(a: str, b: str) -> exp.Expr:
    """The rows of aliases ``a`` and ``b`` are the same patient's (institution and MRN)."""
    return exp.and_(*[_col(c, a).eq(_col(c, b)) for c in ("institution_code", "patient_id")])


def merge_timeline(results: dict[str, ToolResult], *, limit: int) -> ToolResult:
    """Rows of the timeline's parts (keyed by kind) merged newest first, each with ``kind``
    and ``at`` (its time) added; rows without a time last; at most ``limit``."""
    times = dict(_TIMELINE)
    items: list[CitedRow] = []
    for kind, result in results.items():
        for r in result.rows:
            items.append(
                CitedRow(r.citation, {**r.values, "kind": kind, "at": r.values.get(times[kind])})
            )
    items.sort(key=lambda r: (r.values["at"] is None, _neg_time(r.values["at"])))
    return ToolResult("timeline", items[:limit])


def modality_of(name: str | None) -> str | None:
    """The :data:`MODALITIES` key of a modality's name ("CT", "MRI", "胸片", "超声"), else
    None."""
    if name is None:
        return None
    return _MODALITY_NAMES.get(name.strip().lower().replace(" ", ""))


def report_span(text: str) -> tuple[int, int]:
    """The span of a report's findings and impression: from the first such section's text
    to the end of the last one's (a section whose header ends its line runs to a blank line
    or the next header line; else to the end of its line). A text without those headers:
    its first :data:`_REPORT_MAX` characters, whitespace trimmed."""
    spans = []
    for m in _REPORT_HEADER.finditer(text):
        line_end = text.find("\n", m.end())
        line_end = len(text) if line_end < 0 else line_end
        if text[m.end() : line_end].strip():
            start, end = m.end(), line_end
        else:
            start = min(line_end + 1, len(text))
            stop = re.compile(r"\n[ \t]*\n").search(text, start)
            header = _ANY_HEADER.search(text, start)
            ends = [x.start() for x in (stop, header) if x is not None]
            end = min(ends) if ends else len(text)
        spans.append((start, end))
    if spans:
        start, end = spans[0][0], max(e for _, e in spans)
    else:
        start, end = 0, min(len(text), _REPORT_MAX)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def imaging_rows(
    reports: ToolResult,
    studies: ToolResult,
    *,
    text_column: str = NOTE_TEXT,
    modality: str | None = None,
) -> ToolResult:
    """Reports (note rows holding ``text_column``) and study rows as the ``imaging`` tool
    returns them, newest first: each report cited by :func:`report_span` of its text, with
    ``report`` (that text, the rest of the note left out), ``start``/``end`` and
    ``deidentified``; each with ``kind`` and ``at``. With ``modality`` (a
    :data:`MODALITIES` key, the studies already of it), a report is kept when a study is of
    its visit or its text names the modality."""
    visits = {r.values.get("encounter_id") for r in studies.rows} - {None}
    words = MODALITIES[modality][1] if modality else ()
    items: list[CitedRow] = []
    for r in reports.rows:
        text = r.values.get(text_column)
        if not isinstance(text, str) or not text.strip():
            continue
        other_visit = modality and r.values.get("encounter_id") not in visits
        if other_visit and not any(_names_word(text, w) for w in words):
            continue
        start, end = report_span(text)
        values = {k: v for k, v in r.values.items() if k != text_column}
        values.update(
            kind="report",
            at=r.values.get("recorded_at"),
            report=text[start:end],
            start=start,
            end=end,
            deidentified=text_column == DEID_TEXT,
        )
        items.append(CitedRow(_with_span(r.citation, start, end), values))
    for r in studies.rows:
        items.append(
            CitedRow(r.citation, {**r.values, "kind": "study", "at": r.values["study_at"]})
        )
    items.sort(key=lambda r: (r.values["at"] is None, _neg_time(r.values["at"])))
    return ToolResult("imaging", items)


def _names_word(text: str, word: str) -> bool:
    """Whether ``text`` names ``word`` (a Latin word not inside a longer one)."""
    if _CJK.search(word):
        return word in text
    return (
        re.search(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", text, re.IGNORECASE) is not None
    )


def _newest_of_each_kind(result: ToolResult) -> ToolResult:
    """The first (newest) report and the first study of ``result``."""
    seen: set[Any] = set()
    rows = []
    for r in result.rows:
        if r.values["kind"] not in seen:
            seen.add(r.values["kind"])
            rows.append(r)
    return ToolResult(result.tool, rows)


def _neg_time(at: Any) -> float:
    return -at.timestamp() if isinstance(at, datetime) else 0.0


_CJK = re.compile(r"[\u4e00-\u9fff]")
#: An ICD-10 code or code prefix a cohort may name (E11, E11.9, E1; the national
#: extension's I10.x00).
ICD10_PREFIX = re.compile(r"^[A-Z][0-9]{2}(?:\.[0-9A-Za-z]{0,4})?$|^[A-Z][0-9]?$")
#: The comparisons of a cohort's lab condition.
OPS: dict[str, type[exp.Binary]] = {">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE}


def _live(table: str | None = None) -> exp.Expr:
    """Not tombstoned (``is_deleted`` null or false)."""
    return exp.or_(_col("is_deleted", table).is_(exp.null()), exp.not_(_col("is_deleted", table)))


def _with_span(citation: Citation, start: int, end: int) -> Citation:
    return Citation(citation.table, citation.version, citation.key, (start, end))


def _after(column: str, since: datetime, table: str | None = None) -> exp.Expr:
    return _col(column, table) >= exp.cast(_str(since.isoformat(sep=" ")), "timestamp")


def _col(name: str, table: str | None = None) -> exp.Column:
    return col(name) if table is None else exp.column(name, table=table, quoted=True)


def _str(value: str) -> exp.Literal:
    return string(value)


def _table(spec: TableSpec, version: int) -> exp.Table:
    """``schema.table VERSION AS OF version`` (names come from specs, never from users)."""
    return pinned_table(spec.schema_name, spec.table_name, version)
