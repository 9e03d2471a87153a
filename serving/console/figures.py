"""The figures of the operations console, each read from its source, bounded and aggregated
where it lives (Spark for tables, the files for backups and the standby, MLflow's registry).

Every function returns plain JSON-able data of bounded size: aggregates computed by Spark
(``groupBy``, ``max_by``, ``LIMIT``), never the rows of a table; the table list reads each
table's Delta log snapshot (milliseconds, no Spark job) and stops at ``console.max_tables``.
Times are epoch seconds (``cast(ts AS DOUBLE)``: an instant, whatever the session zone);
days of the audit counts are the hospital's days (the session zone, ``cfg.timezone``).

Nothing here reads patient data: ``ops.job_runs`` and ``dq.results`` hold none, and of
``audit.events`` only counts and times per day and action are read (never an actor, a
target or a patient pseudonym).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import __version__
from lakehouse.backup.manifest import list_manifests
from lakehouse.backup.take import destination
from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings
from lakehouse.tables.spec import quote_name
from lakehouse.tables.versions import snapshot_detail

logger = logging.getLogger(__name__)

#: Audit actions the alerts panel counts per day.
ALERT_ACTIONS = ("break_glass", "access_denied", "lockout")
RECENT_RUNS = 20
MAX_JOBS = 200
MAX_FAILING_RULES = 50
MAX_BACKUPS = 20
MAX_MODELS = 100


@dataclass(frozen=True)
class ConsoleTables:
    """The tables the console reads (tests point them at their own small tables)."""

    job_runs: str = "ops.job_runs"
    dq_results: str = "dq.results"
    audit_events: str = "audit.events"


def _missing(name: str) -> Exception:
    return error(ErrorCode.CONSOLE_SOURCE_FAILED, name=name, reason="the table does not exist yet")


def _table(spark: SparkSession, name: str) -> DataFrame:
    if not spark.catalog.tableExists(name):
        raise _missing(name)
    return spark.table(name)


def _epoch(column: str) -> Any:
    return F.col(column).cast("double")


def runs(spark: SparkSession, table: str, *, days: int) -> dict[str, Any]:
    """Per job over the last ``days``: runs by status and the last run with its record
    counts (the run's accounting: seen, landed, quarantined...); the newest runs."""
    df = _table(spark, table)
    window = df.where(F.col("started_at") >= F.expr(f"current_timestamp() - INTERVAL {days} DAYS"))
    last = F.struct(
        F.col("status").alias("status"),
        _epoch("started_at").alias("started"),
        _epoch("finished_at").alias("finished"),
        F.col("duration_s").alias("duration_s"),
        F.col("counts").alias("counts"),
        F.col("error_code").alias("error_code"),
    )
    jobs = (
        window.groupBy("job")
        .agg(
            F.count(F.lit(1)).alias("runs"),
            F.count_if(F.col("status") == "succeeded").alias("succeeded"),
            F.count_if(F.col("status") == "failed").alias("failed"),
            F.count_if(F.col("status") == "running").alias("running"),
            F.max_by(last, F.col("started_at")).alias("last"),
        )
        .orderBy("job")
        .limit(MAX_JOBS)
        .collect()
    )
    recent = (
        df.select(
            "run_id",
            "job",
            "status",
            _epoch("started_at").alias("started"),
            "duration_s",
            "counts",
            "error_code",
        )
        .orderBy(F.col("started_at").desc())
        .limit(RECENT_RUNS)
        .collect()
    )
    out_jobs = []
    for r in jobs:
        lr = r["last"].asDict()
        lr["counts"] = dict(sorted((lr["counts"] or {}).items()))
        out_jobs.append(
            {
                "job": r["job"],
                "runs": r["runs"],
                "succeeded": r["succeeded"],
                "failed": r["failed"],
                "running": r["running"],
                "last": lr,
            }
        )
    out_recent = []
    for r in recent:
        d = r.asDict()
        d["counts"] = dict(sorted((d["counts"] or {}).items()))
        out_recent.append(d)
    return {"days": days, "jobs": out_jobs, "recent": out_recent}


def last_runs(spark: SparkSession, table: str, jobs: tuple[str, ...]) -> dict[str, Any]:
    """The newest run of each of ``jobs`` (status, start, duration, error code): one query."""
    if not spark.catalog.tableExists(table):
        return {}
    last = F.struct(
        F.col("run_id").alias("run_id"),
        F.col("status").alias("status"),
        _epoch("started_at").alias("started"),
        F.col("duration_s").alias("duration_s"),
        F.col("error_code").alias("error_code"),
    )
    rows = (
        spark.table(table)
        .where(F.col("job").isin(*jobs))
        .groupBy("job")
        .agg(F.max_by(last, F.col("started_at")).alias("last"))
        .collect()
    )
    return {r["job"]: r["last"].asDict() for r in rows}


def tables(spark: SparkSession, schemas: list[str], *, max_tables: int) -> dict[str, Any]:
    """Delta tables of ``schemas`` (sorted, at most ``max_tables``): version, size, files
    and last commit time from each table's Delta log snapshot."""
    names: list[str] = []
    for schema in schemas:
        if not spark.catalog.databaseExists(schema):
            continue
        for t in spark.catalog.listTables(schema):
            if t.tableType != "VIEW" and not t.isTemporary:
                names.append(f"{schema}.{t.name}")
    names.sort()
    out = []
    for name in names[:max_tables]:
        detail = table_detail(spark, name)
        if detail is not None:
            out.append({"table": name, **detail})
    return {
        "tables": out,
        "listed": len(out),
        "found": len(names),
        "truncated": len(names) > max_tables,
        "total_bytes": sum(t["size_bytes"] for t in out),
    }


def table_detail(spark: SparkSession, name: str) -> dict[str, Any] | None:
    """Version, size in bytes, file count and last commit time (epoch s) of a Delta table
    (None for a table of another format): Delta's log snapshot, else ``DESCRIBE DETAIL``."""
    snapshot = snapshot_detail(spark, name)
    if snapshot is not None:
        return snapshot
    try:
        row = spark.sql(f"DESCRIBE DETAIL {quote_name(name)}").first()
    except Exception as exc:
        logger.debug("no detail of %s (%s)", name, type(exc).__name__)
        return None
    if row is None or row["format"] != "delta":
        return None
    history = spark.sql(f"DESCRIBE HISTORY {quote_name(name)} LIMIT 1").select("version").first()
    modified = row["lastModified"]
    return {
        "version": None if history is None else int(history["version"]),
        "size_bytes": int(row["sizeInBytes"] or 0),
        "files": int(row["numFiles"] or 0),
        "modified": None if modified is None else modified.timestamp(),
    }


def quality(spark: SparkSession, table: str, *, runs_n: int) -> dict[str, Any]:
    """Rules by status for each of the last ``runs_n`` data-quality runs (the trend) and the
    failing or erroring rules of the newest run, fatal first."""
    df = _table(spark, table)
    trend = (
        df.groupBy("run_id")
        .agg(
            _max_epoch("executed_at").alias("executed"),
            F.count(F.lit(1)).alias("rules"),
            *(
                F.count_if(F.col("status") == s).alias(s)
                for s in ("pass", "fail", "error", "not_applicable")
            ),
        )
        .orderBy(F.col("executed").desc_nulls_last())
        .limit(runs_n)
        .collect()
    )
    runs_out = [r.asDict() for r in trend]
    failing: list[dict[str, Any]] = []
    if runs_out:
        rank = F.expr(
            "CASE severity WHEN 'fatal' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END"
        )
        failing = [
            r.asDict()
            for r in df.where(
                (F.col("run_id") == F.lit(runs_out[0]["run_id"]))
                & F.col("status").isin("fail", "error")
            )
            .select(
                "rule_id",
                "table_name",
                "column_name",
                "severity",
                "status",
                "rows_checked",
                "rows_failing",
                "percent_failing",
                "threshold",
            )
            .orderBy(rank, "rule_id")
            .limit(MAX_FAILING_RULES)
            .collect()
        ]
    return {"runs": runs_out, "failing": failing}


def _max_epoch(column: str) -> Any:
    return F.max(F.col(column)).cast("double")


def alerts(spark: SparkSession, table: str, *, days: int) -> dict[str, Any]:
    """Per hospital day of the last ``days``: counts of break-glass accesses, refusals and
    lockouts with the first and last time of each; no actor, no target, no patient."""
    df = _table(spark, table)
    rows = (
        df.where(
            F.col("action").isin(*ALERT_ACTIONS)
            & (F.col("ts") >= F.expr(f"current_timestamp() - INTERVAL {days} DAYS"))
        )
        .groupBy(F.date_format(F.col("ts"), "yyyy-MM-dd").alias("day"), "action")
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.min(F.col("ts")).cast("double").alias("first"),
            F.max(F.col("ts")).cast("double").alias("last"),
        )
        .orderBy(F.col("day").desc(), "action")
        .limit(days * len(ALERT_ACTIONS) + len(ALERT_ACTIONS))
        .collect()
    )
    by_day: dict[str, dict[str, Any]] = {}
    for r in rows:
        day = by_day.setdefault(r["day"], {"day": r["day"], **{a: 0 for a in ALERT_ACTIONS}})
        day[r["action"]] = r["count"]
        day[f"{r['action']}_first"] = r["first"]
        day[f"{r['action']}_last"] = r["last"]
    return {"days": days, "per_day": list(by_day.values())}


def backups(spark: SparkSession, cfg: Settings, job_runs: str) -> dict[str, Any]:
    """The newest backups of the backup folder (their manifests: kind, time, tables, files,
    bytes stored in the backup itself), the last backup run and the last restore (drill)."""
    dest = destination(cfg)
    manifests = list_manifests(dest)
    out = []
    for m in reversed(manifests[-MAX_BACKUPS:]):
        files = [f for t in m.tables for f in t.files] + [f for s in m.state for f in s.files]
        out.append(
            {
                "id": m.id,
                "kind": m.kind,
                "parent": m.parent,
                "created": datetime.fromisoformat(m.created_at).timestamp(),
                "tables": len(m.tables),
                "state": len(m.state),
                "files": len(files),
                "bytes": sum(f.size for f in files),
                "bytes_stored": sum(f.size for f in files if f.stored_in == m.id),
                "skipped": len(m.skipped),
            }
        )
    last = last_runs(spark, job_runs, ("backup", "restore"))
    return {
        "destination": str(dest),
        "count": len(manifests),
        "backups": out,
        "last_backup_run": last.get("backup"),
        "last_restore": last.get("restore"),
    }


def standby(cfg: Settings) -> dict[str, Any]:
    """The hot standby's last status (``lakehouse standby`` writes it each cycle): state,
    health, lag quantiles and each table's lag and versions."""
    from lakehouse.standby import read_status

    doc = read_status(cfg)
    if doc is None:
        return {"configured": False}
    updated = doc.get("updated_at")
    age = None
    if updated:
        age = round(datetime.now(UTC).timestamp() - datetime.fromisoformat(updated).timestamp(), 3)
    tables_doc: dict[str, dict[str, Any]] = doc.get("tables", {})
    return {
        "configured": True,
        "state": doc.get("state"),
        "healthy": bool(doc.get("healthy")),
        "updated": None if not updated else datetime.fromisoformat(updated).timestamp(),
        "age_s": age,
        "max_lag_s": doc.get("max_lag_s"),
        "lag": doc.get("lag", {}),
        "tables": [
            {
                "table": n,
                "lag_s": t.get("lag_s"),
                "primary_version": t.get("primary_version"),
                "standby_version": t.get("standby_version"),
                "error": t.get("error"),
            }
            for n, t in sorted(tables_doc.items())
            if not t.get("dropped_on_primary")
        ][:500],
        "raw": doc,  # the status document itself (/metrics renders it)
    }


def models(cfg: Settings) -> dict[str, Any]:
    """Registered models of the MLflow registry: latest version, the champion alias and when
    each changed (``LH-CON-001`` when the tracking server does not answer)."""
    from lakehouse.tracking.client import CHAMPION, ping, tracking_uri

    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")) and not ping(
        uri, timeout_s=cfg.console.probe_timeout_s
    ):
        raise error(ErrorCode.CONSOLE_SOURCE_FAILED, name="MLflow", reason="no answer on /health")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.search_registered_models(max_results=MAX_MODELS)
    out = []
    for rm in found:
        aliases = dict(getattr(rm, "aliases", {}) or {})
        latest = [int(v.version) for v in (rm.latest_versions or [])]
        champion = aliases.get(CHAMPION)
        out.append(
            {
                "name": rm.name,
                "latest_version": max(latest) if latest else None,
                "champion_version": None if champion is None else int(champion),
                "aliases": {k: int(v) for k, v in sorted(aliases.items())},
                "updated": (rm.last_updated_timestamp or 0) / 1000.0 or None,
            }
        )
    return {"tracking": _redacted(uri), "models": sorted(out, key=lambda m: m["name"])}


def _redacted(uri: str) -> str:
    from lakehouse.tracking.server import redact_uri

    return redact_uri(uri)


def health(spark: SparkSession, cfg: Settings) -> dict[str, Any]:
    """The service itself, its Spark session, the MLflow server and the LLM endpoint as
    configured: ``up`` true/false, or null where the component is not configured."""
    from lakehouse.tracking.client import ping, tracking_uri

    timeout = cfg.console.probe_timeout_s
    components: list[dict[str, Any]] = [
        {"component": "assistant", "up": True, "detail": f"lakehouse {__version__}"}
    ]
    try:
        spark.catalog.currentDatabase()  # a call into the JVM, no Spark job
        components.append({"component": "spark", "up": True, "detail": spark.version})
    except Exception as exc:
        components.append({"component": "spark", "up": False, "detail": type(exc).__name__})
    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        up = ping(uri, timeout_s=timeout)
        components.append({"component": "mlflow", "up": up, "detail": _redacted(uri)})
    else:
        components.append({"component": "mlflow", "up": None, "detail": "local store"})
    endpoint = cfg.llm.endpoint
    if endpoint:
        up, detail = _reachable(endpoint.rstrip("/") + "/models", timeout)
        components.append({"component": "llm", "up": up, "detail": detail})
    else:
        components.append({"component": "llm", "up": None, "detail": "grounded mode"})
    return {"components": components}


def _reachable(url: str, timeout: float) -> tuple[bool, str]:
    """Whether an HTTP endpoint answers at all (any status below 500 counts)."""
    if not url.startswith(("http://", "https://")):
        return False, "not an http(s) URL"
    try:
        # The URL comes from settings (http or https, checked above), never from a request.
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            return True, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return exc.code < 500, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, type(exc).__name__
