"""MLflow runs: where they are stored, how runs start and always end.

Default tracking URI: a SQLite file under the storage path (the embedded
default); `--tracking-uri` or MLFLOW_TRACKING_URI point anywhere else. Every
run this service opens ends FINISHED or FAILED (`tracked_run`), never RUNNING.

A storage path in object storage (`s3://…`) has no default store: a database
cannot live in a bucket, and one on the local disk is what a cluster without a
shared disk must not depend on. The tracking URI is then named: an MLflow server
(its own artifact store, e.g. `--artifacts-destination s3://…`; clients need no
S3 credentials) or a database, whose runs' artifacts then go to
`<storage_path>/mlartifacts` in the bucket (MLflow writes them with boto3, which
reads the same AWS_* variables; MLFLOW_S3_ENDPOINT_URL also works).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from rubiks_service import storage
from rubiks_service.config_files import ConfigError
from rubiks_service.redact import UserError, redact, redact_url

from .tag_names import JOB_ID_TAG

SERVER_SCHEMES = ("http://", "https://", "databricks")  # stores that choose their own artifact location
CONNECT_TIMEOUT_S = 10  # an MLflow server nobody answers for: one line after this long (cli/_common.py)


class TrackingUnavailable(UserError, RuntimeError):
    """The MLflow tracking server cannot be reached; the message (credentials masked) is one line."""


def default_tracking_uri(storage_path: str) -> str:
    if storage.is_uri(storage_path):
        raise ConfigError(f"storage_path {storage_path} is in object storage, where no MLflow database can live: "
                          "name the tracking store (--tracking-uri or MLFLOW_TRACKING_URI: an MLflow server such as "
                          "http://mlflow:5000, or a database URI)")
    return "sqlite:///" + os.path.join(os.path.abspath(storage_path), "mlflow.db")


def resolve_tracking_uri(explicit: str | None, storage_path: str) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(storage_path)


def check_reachable(tracking_uri: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """An http(s) tracking server must accept a connection within `timeout` s, else `TrackingUnavailable`
    at once (MLflow's client would retry for minutes, then print the URI with its credentials)."""
    import socket
    from urllib.parse import urlsplit

    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        parts = urlsplit(tracking_uri)
        where = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError as exc:
        raise TrackingUnavailable(f"tracking URI {redact_url(tracking_uri)!r} is not a URL: {exc}") from None
    try:
        socket.create_connection(where, timeout=timeout).close()
    except TimeoutError:
        raise TrackingUnavailable(f"cannot reach the MLflow server at {redact_url(tracking_uri)}: no answer "
                                  f"within {timeout:g} s") from None
    except OSError as exc:
        raise TrackingUnavailable(f"cannot reach the MLflow server at {redact_url(tracking_uri)}: "
                                  f"{exc.strerror or exc}") from None


def private_sqlite_file(uri: str) -> None:
    """A sqlite:/// store's database created readable by its owner only (0600), with its folder."""
    path = uri.removeprefix("sqlite:///")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def make_client(tracking_uri: str):
    check_reachable(tracking_uri)  # before importing mlflow: an unreachable server fails in seconds
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        private_sqlite_file(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri)


def default_artifact_root(tracking_uri: str, storage_path: str | None = None) -> str | None:
    """Artifacts of a SQLite store live beside its database (`<dir>/mlartifacts`): MLflow's own default
    is ./mlruns under whatever folder the first run happened to start in. With a storage path in a bucket,
    a database store's artifacts go there (`<storage_path>/mlartifacts`). A server decides for itself."""
    if storage_path and storage.is_uri(storage_path) and not tracking_uri.startswith(SERVER_SCHEMES):
        return storage.join(storage_path, "mlartifacts")
    if tracking_uri.startswith("sqlite:///"):
        return "file://" + os.path.join(os.path.dirname(os.path.abspath(tracking_uri.removeprefix("sqlite:///"))),
                                        "mlartifacts")
    return None


def experiment_id(client, name: str, artifact_root: str | None = None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    if artifact_root is None:
        artifact_root = default_artifact_root(getattr(getattr(client, "_tracking_client", None), "tracking_uri", ""))
    return client.create_experiment(name, artifact_location=artifact_root)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = redact(value)[:6000]  # a logged param is shown to everyone who reads the run
    return out


@contextlib.contextmanager
def tracked_run(client, experiment: str, run_name: str, *, parent_run_id: str | None = None,
                tags: Mapping[str, str] | None = None, artifact_root: str | None = None) -> Iterator[str]:
    """Create a run (a child when `parent_run_id` is given) and end it FINISHED, or FAILED on error."""
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    all_tags["mlflow.runName"] = run_name
    if os.environ.get("RUBIKS_JOB_ID"):  # started by the job queue: lets it find this run
        all_tags[JOB_ID_TAG] = os.environ["RUBIKS_JOB_ID"]
    run = client.create_run(experiment_id(client, experiment, artifact_root), run_name=run_name, tags=all_tags)
    run_id = run.info.run_id
    try:
        yield run_id
    except BaseException as exc:
        with contextlib.suppress(Exception):
            client.set_tag(run_id, "error", redact(f"{type(exc).__name__}: {exc}")[:5000])
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def log_params(client, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    flat = flatten(params)
    items = [Param(k, v) for k, v in flat.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(client, run_id: str, metrics: Mapping[str, Any], step: int | None = None,
                model_id: str | None = None) -> None:
    """The numbers among `metrics`; with `model_id`, logged against that LoggedModel too."""
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        client.log_metric(run_id, key, float(value), step=step or 0, model_id=model_id)


def experiment_url(ui_base: str, exp_id: str) -> str:
    """The MLflow UI page of an experiment's training runs. MLflow 3.17 opens experiments in its
    GenAI view (traces, judges); `workflowType=machine_learning` lands on the runs table instead."""
    return f"{ui_base.rstrip('/')}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
