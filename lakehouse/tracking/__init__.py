"""Experiment tracking and the model registry: the project's MLflow server and its client helpers.

docs/mlflow.md describes the server, its settings and the lineage tags runs carry.
"""

from lakehouse.tracking.client import (
    CHAMPION,
    champion_uri,
    data_versions,
    log_data_versions,
    ping,
    register_champion,
    require_server,
    start_run,
    tracking_uri,
)
from lakehouse.tracking.server import TrackingServer, backend_store_uri, redact_uri

__all__ = [
    "CHAMPION",
    "TrackingServer",
    "backend_store_uri",
    "champion_uri",
    "data_versions",
    "log_data_versions",
    "ping",
    "redact_uri",
    "register_champion",
    "require_server",
    "start_run",
    "tracking_uri",
]
