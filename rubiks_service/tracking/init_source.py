"""`model.init_from` on the driver, before the MLflow run or any worker starts:

    a file path            read as it is
    runs:/<run_id>/model   the run's MLflow model: its weights file downloaded and read
    models:/<name>@<alias> the alias resolved to its version (models:/<name>/<version> as given), then as above

The checkpoint is read with the safe reader and loaded into a model of the run's config, which checks
it (`InitFromError`: missing, unresolvable, another architecture, nothing in common); its contents then
travel to the workers with the run's config (no disk shared by the nodes needed). The outcome is printed
as one line and logged on the run: counts as params, source and version as tags, the key lists as
`init_from.json`.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass

from rubiks_service.train.config import TrainConfig
from rubiks_service.train.init_from import InitFromError, InitReport, read_init_checkpoint
from rubiks_service.train.model_factory import build_from_config, init_weights
from rubiks_service.train.trainer import class_list

from .mlflow_store import log_params
from .model_files import ModelLoadError, download_mlflow_model, is_mlflow_uri, model_version
from .tag_names import INIT_TAG, INIT_VERSION_TAG



@dataclass
class InitSource:
    state: dict  # the checkpoint's contents, for the workers
    report: InitReport


def resolve_init_from(cfg: TrainConfig, tracking_uri: str, *, echo: bool = True) -> InitSource | None:
    """The run's `model.init_from` read and checked, or None when the run starts from scratch; `echo`:
    print the one-line report."""
    spec = cfg.model.init_from
    if spec is None:
        return None
    version = None
    if is_mlflow_uri(spec):
        state, version = fetch_mlflow_checkpoint(spec, tracking_uri)
    elif "://" in spec:
        raise InitFromError(f"init_from {spec}: give a checkpoint file, runs:/<run_id>/model or "
                            f"models:/<name>/<version> or models:/<name>@<alias>")
    else:
        state = read_init_checkpoint(spec)
    classes = class_list(cfg)
    report = init_weights(build_from_config(cfg, len(classes)), cfg, state, classes, source=spec)
    report.version = version
    if echo:
        print(f"[train] {report.line()}", flush=True)
    return InitSource(state, report)


def fetch_mlflow_checkpoint(uri: str, tracking_uri: str) -> tuple[dict, str]:
    """(checkpoint contents, version) of an MLflow model URI; `InitFromError` when it does not resolve.
    The version is `name/version` for models:/ (an alias pinned to the version it names now), the run id
    for runs:/."""
    from mlflow.exceptions import MlflowException

    try:
        found = model_version(uri, tracking_uri)
        if found is None:  # runs:/<run_id>/model
            version = uri.removeprefix("runs:/").split("/")[0]
        else:
            version = f"{found[0]}/{found[1]}"
            uri = f"models:/{version}"  # what was resolved is what is downloaded, if the alias moves meanwhile
        with tempfile.TemporaryDirectory(prefix="rubiks-init-") as tmp:
            return read_init_checkpoint(download_mlflow_model(uri, tracking_uri, tmp), uri), version
    except ModelLoadError as exc:
        raise InitFromError(f"init_from: {exc}") from None
    except MlflowException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InitFromError(f"init_from {uri}: does not resolve in {tracking_uri}: {first[:300]}") from None


def log_init_source(client, run_id: str, init: InitSource | None) -> None:
    """What the run started from: counts as params, source and version as tags, key lists as a JSON artifact."""
    if init is None:
        return
    report = init.report
    log_params(client, run_id, report.counts())
    client.set_tag(run_id, INIT_TAG, report.source)
    if report.version:
        client.set_tag(run_id, INIT_VERSION_TAG, report.version)
    client.log_dict(run_id, asdict(report), "init_from.json")
