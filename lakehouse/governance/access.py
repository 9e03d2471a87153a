"""Guarded, audited reads: the one way services run a user's SQL.

:meth:`AccessService.query` rewrites the SQL under the policy (:mod:`sql_guard`), refuses a
query that names patients outside the user's scope (and audits the refusal), runs the
rewritten query and returns its rows only after the read is audited. A query naming one
patient runs before the scope check: when its rows show that patient, the row filter has
already proved the patient in scope and the patient-directory lookup is skipped (nothing is
returned before the decision). The audit event holds who, role, purpose,
each named patient as a keyed pseudonym, row count, table versions and, for break-glass
access, the stated reason and the flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pyspark.sql import Row, SparkSession
from sqlglot import exp

from lakehouse.errors import ErrorCode, LakehouseError, error
from lakehouse.governance.audit import (
    Action,
    AuditEvent,
    AuditLog,
    audited,
    patient_ref,
    record_or_refuse,
)
from lakehouse.governance.deid.views import SOURCE_PROPERTY
from lakehouse.governance.keys import pseudonym_key
from lakehouse.governance.policy import load_policy
from lakehouse.governance.sessions import Principal
from lakehouse.governance.sql_guard import GuardedQuery, SqlGuard
from lakehouse.settings import Settings
from lakehouse.tables.versions import latest_version


class AccessService:
    """Runs users' queries through the guard and the audit log (fail closed)."""

    def __init__(
        self, spark: SparkSession, guard: SqlGuard, audit: AuditLog, pseudonym_key: bytes
    ) -> None:
        self.spark, self.guard, self.audit, self._key = spark, guard, audit, pseudonym_key

    def query(
        self,
        who: Principal,
        sql: str,
        *,
        purpose: str,
        break_glass_reason: str | None = None,
        limit: int = 1000,
        patients_in: str | None = None,
    ) -> list[Row]:
        """The rows ``who`` may see for ``sql``; ``LH-SEC-006/007/008/009`` otherwise.

        ``patients_in``: the result column holding each row's patient id, for a query that
        names no patient but returns patients (a cohort list): the read is then recorded
        as one event per patient returned (pseudonymized, as a named patient's), before
        the rows are handed over."""
        glass = break_glass_reason is not None
        event = AuditEvent(
            Action.BREAK_GLASS if glass else Action.READ,
            who.username,
            role=who.role,
            session_id=who.session_id,
            purpose=purpose,
            break_glass=glass,
            reason=break_glass_reason,
        )
        try:
            if glass and not (break_glass_reason or "").strip():
                raise error(
                    ErrorCode.ACCESS_DENIED, role=who.role, operation="break glass into",
                    table="(any)", reason="a reason is required",
                )  # fmt: skip
            guarded = self.guard.rewrite(who, sql, break_glass=glass)
        except LakehouseError as exc:
            self._refused(event, exc)
            raise
        event = replace(event, target=",".join(guarded.tables))
        event = replace(event, versions=self.versions(guarded))
        named = self._named(event, guarded.patients)

        def run() -> list[Row]:
            return self.spark.sql(guarded.sql).limit(limit).collect()

        # A cohort list names no patient but returns patients: its events, one per patient
        # returned, are known only after the read.
        per_patient = None if guarded.patients else patients_in
        if per_patient is None and (not guarded.patients or glass):
            return audited(self.audit, named, run)
        # A query naming patients runs first (nothing is returned yet): rows of the one named
        # patient prove the patient in scope (the row filter let them through); otherwise
        # the patient directory decides, and a patient outside the scope is refused.
        try:
            rows = run()
        except Exception as exc:  # on the record as failed, like any failed read
            failure = exc
            return audited(self.audit, named, lambda: _reraise(failure))
        if per_patient is not None:
            returned = tuple(dict.fromkeys(str(r[per_patient]) for r in rows))
            return audited(self.audit, self._named(event, returned), lambda: rows)
        try:
            if not self._shows(rows, guarded.patients):
                self._require_in_scope(who, guarded.patients)
        except LakehouseError as exc:
            self._refused(event, exc)
            raise
        return audited(self.audit, named, lambda: rows)

    def rewrite(self, who: Principal, sql: str, *, purpose: str) -> GuardedQuery:
        """``sql`` as the guard lets ``who`` run it, for a caller that runs it itself (the
        Spark Connect gateway); a refusal is audited as :meth:`query`'s is."""
        try:
            return self.guard.rewrite(who, sql)
        except LakehouseError as exc:
            self._refused(self._event(who, purpose), exc)
            raise

    def admit(self, who: Principal, queries: Sequence[GuardedQuery], *, purpose: str) -> None:
        """Authorize and audit a read whose rows the caller streams itself (Spark Connect):
        patients named outside ``who``'s scope are refused (audited), then the read event is
        recorded before a row is served (``LH-SEC-009`` when it cannot be: fail closed). The
        row count is not known ahead of a stream and stays empty."""
        tables = sorted({t for q in queries for t in q.tables})
        patients = tuple(sorted({p for q in queries for p in q.patients}))
        read = [v for q in queries for v in self.versions(q).split(",") if v]
        versions = ",".join(dict.fromkeys(read))  # each table once, in the order read
        event = replace(self._event(who, purpose), target=",".join(tables), versions=versions)
        try:
            self._require_in_scope(who, patients)
        except LakehouseError as exc:
            self._refused(event, exc)
            raise
        for named in self._named(event, patients):
            record_or_refuse(self.audit, named)

    def _event(self, who: Principal, purpose: str) -> AuditEvent:
        return AuditEvent(
            Action.READ, who.username, role=who.role, session_id=who.session_id, purpose=purpose
        )

    def _refused(self, event: AuditEvent, exc: LakehouseError) -> None:
        """Record a refusal (``access_denied``, the first named patient pseudonymized)."""
        if exc.code is ErrorCode.ACCESS_DENIED:
            named = self._named(event, getattr(exc, "patients", ()))
            record_or_refuse(
                self.audit, replace(named[0], action=Action.ACCESS_DENIED, outcome="denied",
                                    reason=exc.code.id),
            )  # fmt: skip

    def _shows(self, rows: list[Row], patients: tuple[str, ...]) -> bool:
        """Whether ``rows`` hold the one named patient's records."""
        column = self.guard.policy.columns.patient
        if len(patients) != 1:
            return False
        return any(r.asDict().get(column) == patients[0] for r in rows)

    def _named(self, event: AuditEvent, patients: tuple[str, ...]) -> list[AuditEvent]:
        """One event per named patient (pseudonymized), or the event itself."""
        if not patients:
            return [event]
        return [replace(event, patient_ref=patient_ref(self._key, p)) for p in patients]

    def _require_in_scope(self, who: Principal, patients: tuple[str, ...]) -> None:
        """Refuse when a named patient is outside the user's scope (or unknown)."""
        cols, directory = self.guard.policy.columns, self.guard.policy.patient_directory
        if directory is None or "department" not in self.guard.policy.grant(who).scope:
            return
        # A patient of the user's care team is in scope whatever the directory says (below):
        # when every named patient is one, the lookup (a Spark job) decides nothing.
        if all(p in who.care_team for p in patients):
            return
        db, tbl = directory.split(".")
        # The service's own lookup: the directory is scoped like any patient table, but the
        # user needs no read grant on it (it is not returned; roles do not read governance.*).
        named = exp.column(cols.patient, quoted=True).isin(*map(exp.Literal.string, patients))
        scope = self.guard.row_filter(who, directory)
        lookup = (
            exp.select(exp.column(cols.patient, quoted=True))
            .distinct()
            .from_(exp.table_(tbl, db=db, quoted=True))
            .where(named if scope is None else exp.and_(named, scope))
        )
        seen = {r[0] for r in self.spark.sql(lookup.sql(dialect="spark")).collect()}
        # A patient of the user's care team is in scope even where no encounter names a
        # department (member sites' FHIR/CSV encounters): the row filter still applies.
        outside = tuple(p for p in patients if p not in seen and p not in who.care_team)
        if outside:
            exc = error(
                ErrorCode.ACCESS_DENIED, role=who.role, operation="read", table=directory,
                reason=f"{len(outside)} named patient(s) outside the department or care team",
            )  # fmt: skip
            exc.patients = outside  # type: ignore[attr-defined]
            raise exc

    def versions(self, guarded: GuardedQuery) -> str:
        """``table@version`` of each table a guarded query reads, as its audit event names
        them: the version the query pinned (no lookup), else the latest."""
        pinned = dict(guarded.pinned)
        return ",".join(
            f"{n}@{pinned[n] if n in pinned else self._version(n)}" for n in guarded.tables
        )

    def _version(self, name: str) -> str:
        """A Delta table's latest version; for a de-identified view, its source's."""
        if self.spark.catalog.getTable(name).tableType == "VIEW":
            rows = self.spark.sql(f"SHOW TBLPROPERTIES {name}").collect()
            source = {r[0]: r[1] for r in rows}.get(SOURCE_PROPERTY)
            return f"view({source}@{self._version(source)})" if source else "view"
        last = latest_version(self.spark, name)
        return "?" if last is None else str(last)


def access_service(
    spark: SparkSession, cfg: Settings, *, audit: AuditLog | None = None
) -> AccessService:
    """The configured access service: policy file, every TableSpec and de-identified view,
    the patient directory view (refreshed here), ``audit`` (default ``audit.events``)."""
    from lakehouse.governance.audit_delta import audit_log
    from lakehouse.governance.deid.catalog import deid_catalog
    from lakehouse.governance.deid.policy import load_deid_policy
    from lakehouse.governance.directory import PATIENT_DIRECTORY, refresh_patient_directory
    from lakehouse.tables.registry import all_specs

    specs = all_specs()
    catalog = {s.name: s for s in specs}
    catalog.update(deid_catalog(specs, load_deid_policy(cfg.deid.policy_file)))
    policy = load_policy(cfg.security.policy_file)
    if policy.patient_directory == PATIENT_DIRECTORY.name and refresh_patient_directory(spark):
        catalog[PATIENT_DIRECTORY.name] = PATIENT_DIRECTORY  # else department scopes refuse
    guard = SqlGuard(policy, catalog)
    return AccessService(spark, guard, audit or audit_log(spark, cfg), pseudonym_key(cfg))


def _reraise(exc: Exception) -> list[Row]:
    raise exc
