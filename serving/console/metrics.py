"""The console's figures in the Prometheus text format (``GET /metrics``).

Rendered with ``prometheus_client`` from the same cached panels the page shows
(:class:`serving.console.service.Console`), plus the hot standby's own families
(:mod:`lakehouse.standby.metrics`, ``lakehouse_standby_*``) from its status document. Labels
are bounded: job names (the code's), table names (at most ``console.max_tables``), rule
statuses, backup kinds, model names (at most 100), audit actions (three) and components;
never a patient, a user or a run id.

Families (all gauges: each is a reading of its source, not a count this process keeps):

- ``lakehouse_console_panel_up{panel}``: 1 when the panel's source was read, 0 on error;
  ``lakehouse_console_panel_age_seconds{panel}``: age of the cached reading.
- ``lakehouse_job_runs{job,status}``: runs in the last ``console.runs_days`` days;
  ``lakehouse_job_last_run_timestamp_seconds{job}``, ``..._duration_seconds{job}``,
  ``..._succeeded{job}`` (1/0) and ``lakehouse_job_last_run_records{job,count}`` (the last
  run's record accounting: seen, landed, quarantined...).
- ``lakehouse_table_version{table}``, ``lakehouse_table_size_bytes{table}``,
  ``lakehouse_table_files{table}``, ``lakehouse_table_last_commit_timestamp_seconds{table}``.
- ``lakehouse_dq_rules{status}`` of the newest data-quality run and
  ``lakehouse_dq_last_run_timestamp_seconds``.
- ``lakehouse_backups{kind}``, ``lakehouse_backup_last_timestamp_seconds{kind}``,
  ``lakehouse_backup_last_bytes``, ``lakehouse_backup_last_run_succeeded``,
  ``lakehouse_restore_last_timestamp_seconds``, ``lakehouse_restore_last_succeeded``.
- ``lakehouse_standby_configured`` and the ``lakehouse_standby_*`` families.
- ``lakehouse_registered_models``, ``lakehouse_model_latest_version{model}``,
  ``lakehouse_model_champion_version{model}``.
- ``lakehouse_audit_alerts{action,window}``: break-glass accesses, refusals and lockouts
  today (the hospital's day) and over ``console.alert_days`` (window ``<n>d``).
- ``lakehouse_component_up{component}``: assistant, spark, mlflow, llm (configured ones).
- ``lakehouse_build_info{version}``: 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from lakehouse import __version__
from lakehouse.settings import Settings
from lakehouse.standby.metrics import render as render_standby
from serving.console.figures import ALERT_ACTIONS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Families:
    """A collector over families built once per scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render(panels: dict[str, dict[str, Any]], cfg: Settings) -> str:
    """The exposition text of the panels (``Console.scrape``)."""
    fams: list[Metric] = []

    def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
        fam = GaugeMetricFamily(name, doc, labels=labels or [])
        fams.append(fam)
        return fam

    up = gauge("lakehouse_console_panel_up", "1 when the panel's source was read.", ["panel"])
    age = gauge("lakehouse_console_panel_age_seconds", "Age of the cached reading.", ["panel"])
    for name, panel in panels.items():
        up.add_metric([name], 1 if panel.get("status") == "ok" else 0)
        age.add_metric([name], float(panel.get("age_s") or 0.0))

    def data(name: str) -> dict[str, Any] | None:
        panel = panels.get(name) or {}
        return panel.get("data") if panel.get("status") == "ok" else None

    _runs(gauge, data("runs"), cfg)
    _tables(gauge, data("tables"))
    _quality(gauge, data("quality"))
    _backups(gauge, data("backups"))
    _models(gauge, data("models"))
    _alerts(gauge, data("alerts"), cfg)
    health = data("health")
    comp = gauge("lakehouse_component_up", "1 when the component answers.", ["component"])
    for c in (health or {}).get("components", []):
        if c["up"] is not None:
            comp.add_metric([c["component"]], 1 if c["up"] else 0)
    gauge("lakehouse_build_info", "The running lakehouse version.", ["version"]).add_metric(
        [__version__], 1
    )
    standby = data("standby")
    configured = bool(standby and standby.get("configured"))
    gauge("lakehouse_standby_configured", "1 when a standby status exists.").add_metric(
        [], 1 if configured else 0
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(fams))
    text = generate_latest(registry).decode("utf-8")
    if configured and standby is not None:
        text += render_standby(standby.get("raw"))
    return text


Gauge = Any  # the local ``gauge`` factory of :func:`render`


def _runs(gauge: Gauge, data: dict[str, Any] | None, cfg: Settings) -> None:
    days = cfg.console.runs_days
    runs = gauge("lakehouse_job_runs", f"Runs in the last {days} days.", ["job", "status"])
    ts = gauge("lakehouse_job_last_run_timestamp_seconds", "Start of the last run.", ["job"])
    dur = gauge("lakehouse_job_last_run_duration_seconds", "Duration of the last run.", ["job"])
    ok = gauge("lakehouse_job_last_run_succeeded", "1 when the last run succeeded.", ["job"])
    rec = gauge(
        "lakehouse_job_last_run_records",
        "Record accounting of the last run (its named counts).",
        ["job", "count"],
    )
    for j in (data or {}).get("jobs", []):
        job, last = j["job"], j["last"]
        for status in ("succeeded", "failed", "running"):
            runs.add_metric([job, status], j[status])
        if last.get("started") is not None:
            ts.add_metric([job], last["started"])
        if last.get("duration_s") is not None:
            dur.add_metric([job], last["duration_s"])
        ok.add_metric([job], 1 if last.get("status") == "succeeded" else 0)
        for name, value in (last.get("counts") or {}).items():
            rec.add_metric([job, name], value)


def _tables(gauge: Gauge, data: dict[str, Any] | None) -> None:
    version = gauge("lakehouse_table_version", "Newest Delta version.", ["table"])
    size = gauge("lakehouse_table_size_bytes", "Bytes of the current version's files.", ["table"])
    files = gauge("lakehouse_table_files", "Files of the current version.", ["table"])
    commit = gauge(
        "lakehouse_table_last_commit_timestamp_seconds", "Time of the newest commit.", ["table"]
    )
    for t in (data or {}).get("tables", []):
        if t.get("version") is not None:
            version.add_metric([t["table"]], t["version"])
        size.add_metric([t["table"]], t["size_bytes"])
        files.add_metric([t["table"]], t["files"])
        if t.get("modified") is not None:
            commit.add_metric([t["table"]], t["modified"])


def _quality(gauge: Gauge, data: dict[str, Any] | None) -> None:
    rules = gauge("lakehouse_dq_rules", "Rules of the newest data-quality run.", ["status"])
    last = gauge("lakehouse_dq_last_run_timestamp_seconds", "When the newest run ran.")
    runs = (data or {}).get("runs", [])
    if runs:
        for status in ("pass", "fail", "error", "not_applicable"):
            rules.add_metric([status], runs[0][status])
        if runs[0].get("executed") is not None:
            last.add_metric([], runs[0]["executed"])


def _backups(gauge: Gauge, data: dict[str, Any] | None) -> None:
    count = gauge("lakehouse_backups", "Complete backups in the backup folder.", ["kind"])
    when = gauge(
        "lakehouse_backup_last_timestamp_seconds", "When the newest backup was taken.", ["kind"]
    )
    size = gauge("lakehouse_backup_last_bytes", "Bytes the newest backup restores.")
    run_ok = gauge("lakehouse_backup_last_run_succeeded", "1 when the last backup run succeeded.")
    drill = gauge("lakehouse_restore_last_timestamp_seconds", "Start of the last restore (drill).")
    drill_ok = gauge("lakehouse_restore_last_succeeded", "1 when the last restore succeeded.")
    if data is None:
        return
    backups = data.get("backups", [])
    for kind in ("full", "incremental"):
        mine = [b for b in backups if b["kind"] == kind]
        count.add_metric([kind], len(mine))
        if mine:
            when.add_metric([kind], mine[0]["created"])
    if backups:
        size.add_metric([], backups[0]["bytes"])
    for fam, run in ((run_ok, data.get("last_backup_run")), (drill_ok, data.get("last_restore"))):
        if run is not None:
            fam.add_metric([], 1 if run["status"] == "succeeded" else 0)
    if data.get("last_restore") is not None:
        drill.add_metric([], data["last_restore"]["started"])


def _models(gauge: Gauge, data: dict[str, Any] | None) -> None:
    n = gauge("lakehouse_registered_models", "Models in the MLflow registry.")
    latest = gauge("lakehouse_model_latest_version", "Newest version of the model.", ["model"])
    champ = gauge(
        "lakehouse_model_champion_version", "Version the champion alias points at.", ["model"]
    )
    if data is None:
        return
    n.add_metric([], len(data["models"]))
    for m in data["models"]:
        if m["latest_version"] is not None:
            latest.add_metric([m["name"]], m["latest_version"])
        if m["champion_version"] is not None:
            champ.add_metric([m["name"]], m["champion_version"])


def _alerts(gauge: Gauge, data: dict[str, Any] | None, cfg: Settings) -> None:
    fam = gauge(
        "lakehouse_audit_alerts",
        "Break-glass accesses, refusals and lockouts: today (the hospital's day) and over "
        "console.alert_days.",
        ["action", "window"],
    )
    if data is None:
        return
    today = datetime.now(ZoneInfo(cfg.timezone)).strftime("%Y-%m-%d")
    days = data["per_day"]
    for action in ALERT_ACTIONS:
        fam.add_metric([action, "today"], sum(d[action] for d in days if d["day"] == today))
        fam.add_metric([action, f"{data['days']}d"], sum(d[action] for d in days))
