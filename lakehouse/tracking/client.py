"""What the project's training and scoring code calls to use the tracking server.

``start_run`` opens an MLflow run on the configured server with the project's lineage tags
(git commit, lakehouse version); ``log_data_versions`` records the Delta table versions the
run read, so it can be re-run on the same data (``data_versions`` reads them back);
``register_champion`` registers a run's model and points the alias ``champion`` at it, which
scoring loads as ``models:/<name>@champion``.
"""

from __future__ import annotations

import logging
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse import __version__
from lakehouse.errors import ErrorCode, error
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from mlflow import ActiveRun
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

CHAMPION = "champion"
#: Tag prefix of the Delta table versions a run read: ``lakehouse.data.<table>.version``.
DATA_TAG_PREFIX = "lakehouse.data."
DATA_TAG_SUFFIX = ".version"
GIT_COMMIT_TAG = "lakehouse.git_commit"
VERSION_TAG = "lakehouse.version"


def server_url(cfg: Settings) -> str:
    """``http://host:port`` of the project's own server (a wildcard bind is reached on loopback)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 (a client)
    host = wildcard.get(cfg.mlflow.host, cfg.mlflow.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{cfg.mlflow.port}"


def tracking_uri(cfg: Settings) -> str:
    """The tracking URI clients use: ``mlflow.tracking_uri`` or the project's own server."""
    return cfg.mlflow.tracking_uri or server_url(cfg)


def ping(url: str, *, timeout_s: float = 2.0) -> bool:
    """True when a tracking server answers ``GET <url>/health`` with 200."""
    if not url.startswith(("http://", "https://")):
        return False
    try:
        # The URL comes from settings (http or https, checked above), never from a request.
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout_s) as resp:  # noqa: S310
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def server_version(url: str, *, timeout_s: float = 2.0) -> str | None:
    """The MLflow version a server reports on ``/version``; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/version", timeout=timeout_s) as resp:  # noqa: S310
            return bytes(resp.read(64)).decode("ascii", "replace").strip()
    except (urllib.error.URLError, OSError, ValueError):
        return None


def require_server(cfg: Settings) -> str:
    """The tracking URI of ``cfg`` once its server answers; LH-MLF-004 when it does not."""
    uri = tracking_uri(cfg)
    if not ping(uri):
        raise error(ErrorCode.MLFLOW_UNREACHABLE, url=uri, reason="no answer on /health")
    return uri


def git_commit(home: Path) -> str | None:
    """The commit checked out in ``home``; None outside a git work tree or without git."""
    try:
        done = subprocess.run(
            ["git", "-C", str(home), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def start_run(
    cfg: Settings,
    experiment: str,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ActiveRun:
    """Open a run in ``experiment`` on the configured server, tagged for lineage.

    Use it as ``with start_run(cfg, "readmission") as run:``; MLflow's fluent calls
    (``mlflow.log_metric`` ...) inside the block log to this run. Sets the process's tracking
    URI. LH-MLF-004 when the server does not answer.
    """
    import mlflow

    uri = require_server(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(experiment)
    lineage = {VERSION_TAG: __version__}
    commit = git_commit(cfg.home)
    if commit is not None:
        lineage[GIT_COMMIT_TAG] = commit
    run = mlflow.start_run(run_name=run_name, tags={**lineage, **(tags or {})})
    logger.info("mlflow run %s started in experiment %s", run.info.run_id, experiment)
    return run


def log_data_versions(run: ActiveRun | Run | str, versions: Mapping[str, int]) -> None:
    """Tag ``run`` with the Delta version of each table it read (``{table: version}``)."""
    import mlflow

    run_id = run if isinstance(run, str) else run.info.run_id
    client = mlflow.MlflowClient()
    for table, version in sorted(versions.items()):
        client.set_tag(run_id, f"{DATA_TAG_PREFIX}{table}{DATA_TAG_SUFFIX}", str(int(version)))


def data_versions(cfg: Settings, run_id: str) -> dict[str, int]:
    """The ``{table: version}`` a run logged with :func:`log_data_versions`."""
    import mlflow

    uri = require_server(cfg)
    tags = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).data.tags
    return {
        key[len(DATA_TAG_PREFIX) : -len(DATA_TAG_SUFFIX)]: int(value)
        for key, value in tags.items()
        if key.startswith(DATA_TAG_PREFIX) and key.endswith(DATA_TAG_SUFFIX)
    }


def champion_uri(name: str) -> str:
    """The model URI scoring loads: ``models:/<name>@champion``."""
    return f"models:/{name}@{CHAMPION}"


def register_champion(cfg: Settings, name: str, run_id: str, artifact_path: str) -> int:
    """Register the model a run logged under ``artifact_path`` as a new version of ``name``
    and point the alias ``champion`` at it; the new version number.

    LH-MLF-005 when the registry refuses (no such run or model), LH-MLF-004 when the server
    does not answer.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = require_server(cfg)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    source = f"runs:/{run_id}/{artifact_path}"
    try:
        # The fluent register_model resolves runs:/ URIs; it uses the process's registry URI.
        mlflow.set_registry_uri(uri)
        mlflow.set_tracking_uri(uri)
        version = mlflow.register_model(source, name, tags={"lakehouse.run_id": run_id})
        client.set_registered_model_alias(name, CHAMPION, str(version.version))
    except MlflowException as exc:
        reason = str(exc.error_code) if exc.error_code else type(exc).__name__
        raise error(
            ErrorCode.MLFLOW_REGISTRY_FAILED, operation="registration", name=name, reason=reason
        ) from None
    logger.info("model %s version %s is the champion (run %s)", name, version.version, run_id)
    return int(version.version)
