"""The standby's figures in the Prometheus text exposition format (version 0.0.4).

:func:`render` turns the shipper's status document (``standby/status.json``) into metric
text, so any process that can read that file can serve it: the shipper writes it beside
the status as ``standby/metrics.prom`` (the node_exporter textfile collector picks that up
today), and a future ``/metrics`` endpoint serves ``render(read_status(cfg))``.

Metrics (``table`` label: ``schema.table``):

- ``lakehouse_standby_lag_seconds{table}`` gauge: seconds since the oldest primary commit the
  standby lacks appeared; 0 when caught up. Alert on it.
- ``lakehouse_standby_last_ship_lag_seconds{table}`` gauge: lag of the newest shipped version.
- ``lakehouse_standby_version{table,site}`` gauge: newest version on the primary / standby.
- ``lakehouse_standby_versions_shipped_total{table}`` counter (since the shipper started).
- ``lakehouse_standby_table_error{table}`` gauge: 1 while the table cannot ship.
- ``lakehouse_standby_ship_lag_seconds`` histogram: the lag of every shipped version.
- ``lakehouse_standby_healthy`` gauge: 1 when running, no table in error and every lag at
  most ``standby.max_lag_s``.
- ``lakehouse_standby_last_cycle_timestamp_seconds`` gauge: when the status was written
  (a stalled shipper shows as an old timestamp).
"""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any

#: Histogram bucket bounds, seconds (the acceptance target is p99 <= 5 s).
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class LagHistogram:
    """Cumulative histogram of shipping lags (Prometheus semantics)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def to_json(self) -> dict[str, Any]:
        cumulative, running = [], 0
        for bound, n in zip(BUCKETS, self.counts, strict=False):
            running += n
            cumulative.append([bound, running])
        return {"buckets": cumulative, "sum": round(self.sum, 6), "count": self.count}


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float | int | None) -> str:
    return (
        "NaN" if value is None else repr(float(value)) if isinstance(value, float) else str(value)
    )


def render(status: dict[str, Any] | None) -> str:
    """Prometheus text for a status document (``None``: only ``healthy 0``)."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, rows: list[tuple[str, object]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in rows:
            out.append(f"{name}{labels} {number(value)}")  # type: ignore[arg-type]

    if status is None:
        family("lakehouse_standby_healthy", "gauge", "1 when the standby is in sync.", [("", 0)])
        return "\n".join(out) + "\n"
    tables: dict[str, dict[str, Any]] = status.get("tables", {})
    live = {n: t for n, t in tables.items() if not t.get("dropped_on_primary")}

    def per_table(key: str) -> list[tuple[str, object]]:
        return [(f'{{table="{label_value(n)}"}}', t.get(key)) for n, t in live.items()]

    family(
        "lakehouse_standby_lag_seconds",
        "gauge",
        "Seconds since the oldest primary commit the standby lacks was written (0: in sync).",
        per_table("lag_s"),
    )
    family(
        "lakehouse_standby_last_ship_lag_seconds",
        "gauge",
        "Lag of the newest version shipped, from primary commit to standby commit.",
        per_table("last_ship_lag_s"),
    )
    versions: list[tuple[str, object]] = []
    for n, t in live.items():
        for where in ("primary", "standby"):
            value = t.get(f"{where}_version")
            versions.append(
                (f'{{table="{label_value(n)}",site="{where}"}}', -1 if value is None else value)
            )
    family("lakehouse_standby_version", "gauge", "Newest Delta version per site.", versions)
    family(
        "lakehouse_standby_versions_shipped_total",
        "counter",
        "Versions shipped since the shipper started.",
        per_table("versions_shipped"),
    )
    family(
        "lakehouse_standby_table_error",
        "gauge",
        "1 while the table cannot ship (see status.json for the code).",
        [
            (f'{{table="{label_value(n)}"}}', int(t.get("error") is not None))
            for n, t in live.items()
        ],
    )
    hist = status.get("lag_histogram") or {"buckets": [], "sum": 0.0, "count": 0}
    name = "lakehouse_standby_ship_lag_seconds"
    out.append(f"# HELP {name} Lag of every shipped version, seconds.")
    out.append(f"# TYPE {name} histogram")
    for bound, count in hist["buckets"]:
        out.append(f'{name}_bucket{{le="{bound:g}"}} {count}')
    out.append(f'{name}_bucket{{le="+Inf"}} {hist["count"]}')
    out.append(f"{name}_sum {number(float(hist['sum']))}")
    out.append(f"{name}_count {hist['count']}")
    family(
        "lakehouse_standby_healthy",
        "gauge",
        "1 when shipping, no table in error and every lag within standby.max_lag_s.",
        [("", int(bool(status.get("healthy"))))],
    )
    updated = status.get("updated_at")
    stamp = datetime.fromisoformat(updated).timestamp() if updated else None
    family(
        "lakehouse_standby_last_cycle_timestamp_seconds",
        "gauge",
        "When the shipper last wrote its status (Unix time).",
        [("", stamp)],
    )
    return "\n".join(out) + "\n"
