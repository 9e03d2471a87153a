"""FHIR Bulk Data ``$export`` (Bulk Data Access IG, asynchronous request pattern).

A kick-off (``GET [base]/$export`` or ``[base]/Patient/$export`` with ``Prefer:
respond-async``) starts one job in a background thread of the service and answers ``202``
with the status URL. Each resource type is one guarded query as the signed-in user (the
SQL guard's rewrite of the FHIR store's SELECT: the policy's row and column rules apply,
so an institution-level export holds the caller's institutions, and departments where the
role is department-scoped) run as a Spark DataFrame; the builders turn its rows into
resources on the executors and Spark writes them as NDJSON text under
``<data_dir>/serving/fhir-export/<job>/``: nothing is collected to the driver. When all
types are written, the status answers ``200`` with the manifest; files are downloaded
with the same sign-in, by the user who started the job only. ``DELETE`` on the status URL
cancels the job (its Spark jobs are cancelled) and removes its files.

Every export is one ``export`` audit event (when it ends: done, failed or cancelled) with
the number of distinct patients whose resources it wrote, the types and the table
versions; no event per patient or row.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, Row, SparkSession
from sqlglot import exp

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.access import AccessService
from lakehouse.governance.audit import Action, AuditEvent, record_or_refuse
from lakehouse.governance.sessions import Principal
from serving.assistant.tools import purpose_of
from serving.fhir.resources import ALL_KINDS, KINDS, Kind, Resource
from serving.fhir.store import FhirStore
from serving.sql import col

logger = logging.getLogger(__name__)

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
MAX_RUNNING = 2  # running exports per user


@dataclass
class ExportJob:
    """One bulk export: who asked, what, its state and the files written."""

    id: str
    owner: str
    request: str
    types: tuple[str, ...]
    since: datetime | None
    level: str  # "system" or "patient"
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: str = "running"  # running, done, failed, cancelled
    progress: str = "queued"
    output: list[dict[str, Any]] = field(default_factory=list)
    error: LakehouseError | None = None
    patients: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def manifest(self, base: str) -> Resource:
        """The completion manifest (Bulk Data IG): transactionTime, request, output."""
        return {
            "transactionTime": self.started.isoformat(),
            "request": self.request,
            "requiresAccessToken": True,
            "output": [
                {
                    "type": o["type"],
                    "url": f"{base}/$export-file/{self.id}/{o['file']}",
                    "count": o["count"],
                }
                for o in self.output
            ],
            "error": [],
        }


def _convert(value: Any) -> Any:
    """A Spark row value as the FHIR builders take it (nested rows as dicts)."""
    if isinstance(value, Row):
        return {k: _convert(v) for k, v in value.asDict().items()}
    if isinstance(value, list):
        return [_convert(v) for v in value]
    return value


def _lines(
    build: Callable[[dict[str, Any], ZoneInfo], Resource], zone: ZoneInfo, rows: Iterator[Row]
) -> Iterator[str]:
    """NDJSON lines of the resources of some rows (runs on the executors)."""
    seen: set[str] = set()
    for row in rows:
        d = {k: _convert(v) for k, v in row.asDict().items()}
        if "note_text" in d:  # DocumentReference: the text the role may read
            d["text"] = d.pop("note_text")
        resource = build(d, zone)
        if resource["id"] in seen:  # a patient sent by several sources: one resource
            continue
        seen.add(resource["id"])
        yield json.dumps(resource, ensure_ascii=False, separators=(",", ":"), default=str)


class ExportJobs:
    """The export jobs of one service process."""

    def __init__(self, spark: SparkSession, access: AccessService, store: FhirStore, root: Path):
        self.spark, self.access, self.store, self.root = spark, access, store, root
        self.jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()

    # -- kick-off, status, cancel, files ----------------------------------------------
    def start(
        self,
        who: Principal,
        request: str,
        *,
        types: str | None,
        since: str | None,
        output_format: str | None,
        level: str,
    ) -> ExportJob:
        """Validate the kick-off parameters and start the job's thread."""
        if output_format is not None and output_format not in OUTPUT_FORMATS:
            raise error(ErrorCode.FHIR_EXPORT_INVALID, name="_outputFormat", reason="NDJSON only")
        wanted = _types(types, level)
        start = _since(since)
        with self._lock:
            running = [
                j for j in self.jobs.values() if j.owner == who.username and j.state == "running"
            ]
            if len(running) >= MAX_RUNNING:
                raise error(ErrorCode.FHIR_EXPORT_BUSY, count=len(running))
            job = ExportJob(uuid.uuid4().hex, who.username, request, wanted, start, level)
            self.jobs[job.id] = job
        thread = threading.Thread(
            target=self._run, args=(who, job), name=f"fhir-export-{job.id[:8]}", daemon=True
        )
        thread.start()
        return job

    def job(self, who: Principal, job_id: str) -> ExportJob:
        """A job of ``who`` (``LH-FHR-006`` for another user's or an unknown one)."""
        job = self.jobs.get(job_id)
        if job is None or job.owner != who.username:
            raise error(ErrorCode.FHIR_EXPORT_NOT_FOUND, name="job")
        return job

    def cancel(self, who: Principal, job_id: str) -> None:
        """Cancel a running job (its Spark jobs too) or remove a finished one's files."""
        job = self.job(who, job_id)
        job.cancel.set()
        if job.state == "running":
            self.spark.sparkContext.cancelJobGroup(self._group(job))
        with self._lock:
            self.jobs.pop(job.id, None)
        shutil.rmtree(self.root / job.id, ignore_errors=True)

    def file(self, who: Principal, job_id: str, name: str) -> Path:
        """A written NDJSON file of a finished job of ``who``."""
        job = self.job(who, job_id)
        if job.state != "done" or name not in {o["file"] for o in job.output}:
            raise error(ErrorCode.FHIR_EXPORT_NOT_FOUND, name="file")
        return self.root / job.id / name

    def wait(self, job: ExportJob, timeout_s: float) -> None:
        """Block until the job has ended (tests and the CLI)."""
        deadline = time.monotonic() + timeout_s
        while job.state == "running" and time.monotonic() < deadline:
            time.sleep(0.1)

    # -- the job ----------------------------------------------------------------------
    def _group(self, job: ExportJob) -> str:
        return f"fhir-export-{job.id}"

    def _run(self, who: Principal, job: ExportJob) -> None:
        sc = self.spark.sparkContext
        sc.setJobGroup(self._group(job), "FHIR bulk export", interruptOnCancel=True)
        folder = self.root / job.id
        tables: list[str] = []
        versions: list[str] = []
        keys: list[DataFrame] = []
        current = ""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for kind in (k for k in ALL_KINDS if k.type in job.types):
                if job.cancel.is_set():
                    break
                current = kind.type
                job.progress = f"writing {kind.type}"
                df, guarded_tables, version = self._frame(who, kind, job.since)
                tables += guarded_tables
                versions.append(version)
                if kind.patient_linked:
                    keys.append(df.select("institution_code", "patient_id"))
                self._write(job, kind, df, folder)
            if not job.cancel.is_set():
                job.progress = "counting patients"
                job.patients = _patient_count(keys)
                job.state = "done"
            else:
                job.state = "cancelled"
        except LakehouseError as exc:
            job.state, job.error = "failed", exc
        except Exception as exc:
            job.state = "cancelled" if job.cancel.is_set() else "failed"
            logger.error("FHIR export failed: %s", type(exc).__name__)
            job.error = error(ErrorCode.FHIR_EXPORT_FAILED, name=current, reason=type(exc).__name__)
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            self._audit(who, job, tables, versions)
            if job.state != "done":
                shutil.rmtree(folder, ignore_errors=True)

    def _frame(
        self, who: Principal, kind: Kind, since: datetime | None
    ) -> tuple[DataFrame, list[str], str]:
        """The guarded DataFrame of one kind's rows (the guard's rewrite of the store's
        SELECT, plus the de-identified note text or imaging series where they apply)."""
        where = None
        if since is not None:
            local = since.astimezone(self.store.zone).replace(tzinfo=None)
            literal = exp.cast(exp.Literal.string(local.isoformat(sep=" ")), "timestamp")
            where = col("source_updated_at") >= literal
        query = self.store.select(who, kind, where)
        query = _enrich(self.store, who, kind, query)
        guarded = self.access.guard.rewrite(who, query.sql(dialect="spark"))
        versions = self.access.versions(guarded)
        return self.spark.sql(guarded.sql), list(guarded.tables), versions

    def _write(self, job: ExportJob, kind: Kind, df: DataFrame, folder: Path) -> None:
        """Write one kind's resources as NDJSON (Spark text part files, renamed)."""
        tag = kind.tag or kind.table(self.store.tables).table_name
        out = folder / f"_{kind.type}-{tag}"
        lines = df.rdd.mapPartitions(functools.partial(_lines, kind.build, self.store.zone))
        lines.saveAsTextFile(str(out))
        n = sum(1 for o in job.output if o["type"] == kind.type)
        for part in sorted(out.glob("part-*")):
            count = _count_lines(part)
            if count:
                n += 1
                name = f"{kind.type}-{n}.ndjson"
                part.rename(folder / name)
                job.output.append({"type": kind.type, "file": name, "count": count})
        shutil.rmtree(out, ignore_errors=True)

    def _audit(
        self, who: Principal, job: ExportJob, tables: list[str], versions: list[str]
    ) -> None:
        """One ``export`` event per export: patients, types, outcome, table versions."""
        detail = {
            "job": job.id,
            "level": job.level,
            "types": list(job.types),
            "since": job.since.isoformat() if job.since else None,
            "state": job.state,
            "resources": sum(o["count"] for o in job.output),
        }
        event = AuditEvent(
            Action.EXPORT,
            who.username,
            outcome="allowed" if job.state == "done" else job.state,
            role=who.role,
            session_id=who.session_id,
            target=",".join(sorted(set(tables))),
            purpose=purpose_of(who),
            row_count=job.patients,
            versions=",".join(v for v in versions if v),
            reason=job.error.code.id if job.error else None,
            detail=json.dumps(detail, sort_keys=True),
        )
        try:
            record_or_refuse(self.access.audit, event)
        except LakehouseError as exc:  # the audit log refused: the files are not released
            job.state, job.error = "failed", exc
            shutil.rmtree(self.root / job.id, ignore_errors=True)


def _enrich(store: FhirStore, who: Principal, kind: Kind, query: exp.Select) -> exp.Select:
    """Joins that complete a kind's rows in one query: a note's de-identified text where the
    role may not read the note text but may read ``silver.note_deid``; a study's series."""
    tables = store.tables
    if kind.type == "DocumentReference" and "note_text" not in _selected(query):
        deid = tables.note_deid
        sub = (
            exp.select(
                *[col(c) for c in (*deid.keys, "source_updated_at")],
                exp.alias_(col("text_deid"), "note_text"),
            )
            .from_(exp.table_(deid.table_name, db=deid.schema_name, quoted=True))
            .where(col("text_deid").is_(exp.null()).not_())
        )
        joined = _join(query, sub, "d", (*deid.keys, "source_updated_at"), ("note_text",))
        try:  # the guard alone: may the role read silver.note_deid?
            store.tools.access.guard.rewrite(who, joined.sql(dialect="spark"))
        except LakehouseError:
            return query
        return _with_deid_flag(joined)
    if kind.type == "ImagingStudy":
        series = tables.imaging_series
        parts = ("institution_code", "source_system", "study_instance_uid")
        fields = ("series_instance_uid", "modality", "series_description", "body_part")
        struct = exp.func("STRUCT", *[col(c) for c in (*fields, "instance_count")])
        sub = (
            exp.select(
                *[col(c) for c in parts], exp.alias_(exp.func("COLLECT_LIST", struct), "series")
            )
            .from_(exp.table_(series.table_name, db=series.schema_name, quoted=True))
            .group_by(*[col(c) for c in parts])
        )
        return _join(query, sub, "s", parts, ("series",))
    return query


def _selected(query: exp.Select) -> set[str]:
    return {e.alias_or_name for e in query.expressions}


def _join(
    query: exp.Select, sub: exp.Select, alias: str, on: tuple[str, ...], take: tuple[str, ...]
) -> exp.Select:
    """``query`` (aliased ``m``) LEFT JOIN ``sub`` (aliased ``alias``) on ``on``, adding the
    ``take`` columns of ``sub``."""
    main = query.copy()
    cols = [exp.column(e.alias_or_name, table="m", quoted=True) for e in main.expressions]
    cond = exp.and_(
        *[
            exp.column(c, table="m", quoted=True).eq(exp.column(c, table=alias, quoted=True))
            for c in on
        ]
    )
    return (
        exp.select(*cols, *[exp.column(c, table=alias, quoted=True) for c in take])
        .from_(main.subquery("m"))
        .join(sub.subquery(alias), on=cond, join_type="left")
    )


def _with_deid_flag(query: exp.Select) -> exp.Select:
    """Mark rows whose text is the de-identified one (the builder adds the label)."""
    flag = exp.alias_(exp.column("note_text", table="d", quoted=True).is_(exp.null()).not_(),
                      "text_deid")  # fmt: skip
    return query.select(flag)


def _types(value: str | None, level: str) -> tuple[str, ...]:
    """The ``_type`` list (all types served by default; a patient-level export only those
    of patients and the Patient itself)."""
    served = [
        t for t, k in KINDS.items() if level == "system" or k.patient_linked or not k.clinical
    ]
    if value is None or not value.strip():
        return tuple(served)
    asked = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in asked if t not in served]
    if unknown:
        shown = unknown[0] if unknown[0].isalpha() and len(unknown[0]) < 40 else "(not shown)"
        raise error(ErrorCode.FHIR_EXPORT_INVALID, name="_type", reason=f"{shown} not served")
    return tuple(dict.fromkeys(asked))


def _since(value: str | None) -> datetime | None:
    """``_since``: a FHIR instant (a zone is required)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise error(
            ErrorCode.FHIR_EXPORT_INVALID, name="_since", reason="a FHIR instant with a zone"
        )
    return moment


def _patient_count(frames: list[DataFrame]) -> int:
    """Distinct patients across the exported types (one Spark aggregate)."""
    if not frames:
        return 0
    union = functools.reduce(lambda a, b: a.unionByName(b), frames)
    return int(union.where("patient_id IS NOT NULL").distinct().count())


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)
