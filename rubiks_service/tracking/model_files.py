"""An MLflow model URI (`runs:/<run_id>/model`, `models:/<name>/<version>`, `models:/<name>@<alias>`) to
the local weights file of the model a training run logged (`mlflow_model.log_trained_model`).

Used by serving (`rubiks predict | eval | export MODEL`) and by a training run's `model.init_from`. Only
the files are downloaded; nothing of the model's Python code runs. The store is passed, never set
globally: mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI in os.environ (later runs of this
process would log to the model's store), and MLflow resolves `models:/` in the global registry.
"""
from __future__ import annotations

import os

import yaml

from rubiks_service.redact import UserError, one_line, redact_url

from .mlflow_model import CHECKPOINT_ARTIFACT

MLFLOW_SCHEMES = ("runs:/", "models:/")


class ModelLoadError(UserError, ValueError):
    """A MODEL that cannot be used, with the reason (one line)."""


def is_mlflow_uri(spec: str) -> bool:
    return spec.startswith(MLFLOW_SCHEMES)


def model_version(uri: str, tracking_uri: str) -> tuple[str, str] | None:
    """(name, version) of a `models:/` URI, its alias looked up in `tracking_uri`'s registry; None for runs:/."""
    if not uri.startswith("models:/"):
        return None
    name, alias_sep, ref = uri.removeprefix("models:/").partition("@")
    if alias_sep:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        return name, str(client.get_model_version_by_alias(name, ref).version)
    name, _, version = name.partition("/")
    if not version.isdigit():
        raise ModelLoadError(f"{uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>")
    return name, version


def check_store_exists(uri: str, tracking_uri: str, *, configured: bool) -> None:
    """A SQLite store must exist already: opening one creates an empty database (and then reports the
    model as not found). `configured`: the store was named (--tracking-uri, MLFLOW_TRACKING_URI), else it
    is the default under the storage path."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = tracking_uri.removeprefix("sqlite:///")
    if os.path.isfile(path):
        return
    if configured:
        raise ModelLoadError(f"{uri}: the tracking store {redact_url(tracking_uri)} does not exist (check "
                             "--tracking-uri / MLFLOW_TRACKING_URI)")
    raise ModelLoadError(f"{uri}: no MLflow tracking store configured and none at {path} (the default); name the "
                         "store that holds the model: --tracking-uri URI or MLFLOW_TRACKING_URI=URI")


def resolve_mlflow_model(uri: str, tracking_uri: str) -> dict:
    """What an MLflow model URI names in `tracking_uri`'s store: {uri, store, name, version, alias, run_id,
    model_id, artifact_uri} (name/version/alias for models:/ only); `ModelLoadError` when it does not resolve."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from .tag_names import MODEL_ID_TAG

    info = {"uri": uri, "store": redact_url(tracking_uri)}
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        found = model_version(uri, tracking_uri)
        if found is None:
            run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            run = client.get_run(run_id)
            info.update(run_id=run_id, model_id=run.data.tags.get(MODEL_ID_TAG), artifact_uri=uri)
        else:
            name, version = found
            mv = client.get_model_version(name, version)
            info.update(name=name, version=int(version), alias=uri.partition("@")[2] or None, run_id=mv.run_id,
                        model_id=getattr(mv, "model_id", None),
                        artifact_uri=client.get_model_version_download_uri(name, version))
        if info["model_id"]:
            # the LoggedModel's own folder: MLflow's runs:/ lookup of a run's LoggedModel asks the default
            # store, not the one given here
            info["artifact_uri"] = client.get_logged_model(info["model_id"]).artifact_location
    except MlflowException as exc:
        raise ModelLoadError(f"MLflow model {uri!r} does not resolve in {redact_url(tracking_uri)}: "
                             f"{one_line(exc)}") from None
    return info


def download_mlflow_model(uri: str, tracking_uri: str, dst: str) -> str:
    """The MLflow model at `uri` into `dst`; returns the path of its weights file."""
    return fetch_mlflow_model(uri, tracking_uri, dst)[0]


def fetch_mlflow_model(uri: str, tracking_uri: str, dst: str) -> tuple[str, dict]:
    """The MLflow model at `uri` into `dst`: (the path of its weights file, `resolve_mlflow_model`'s answer)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stderr stays one line per problem
    try:
        info = resolve_mlflow_model(uri, tracking_uri)
        local = mlflow.artifacts.download_artifacts(artifact_uri=info["artifact_uri"], dst_path=dst,
                                                    tracking_uri=tracking_uri)
    except ModelLoadError:
        raise
    except (MlflowException, OSError) as exc:
        raise ModelLoadError(f"cannot fetch MLflow model {uri!r} from {redact_url(tracking_uri)}: {one_line(exc)}") from None
    return weights_path(local, uri), info


def weights_path(local: str, uri: str) -> str:
    """The weights file an MLmodel (downloaded into `local`) names, which must lie inside `local`: an
    absolute or `../` path in a crafted MLmodel would load a file from elsewhere on this machine."""
    mlmodel = os.path.join(local, "MLmodel")
    if not os.path.isfile(mlmodel):
        raise ModelLoadError(f"{uri!r} is not an MLflow model (no MLmodel file)")
    try:
        with open(mlmodel, encoding="utf-8") as f:
            spec = yaml.safe_load(f) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{uri!r}: its MLmodel file is not valid YAML ({one_line(exc, limit=200)})") from None
    artifact = _get(spec, "flavors", "python_function", "artifacts", CHECKPOINT_ARTIFACT)
    if not isinstance(artifact, dict) or not isinstance(artifact.get("path"), str) or not artifact["path"]:
        raise ModelLoadError(f"{uri!r} is not a rubiks-service model (no {CHECKPOINT_ARTIFACT!r} artifact path "
                             "in its MLmodel)")
    root = os.path.realpath(local)
    path = os.path.realpath(os.path.join(root, artifact["path"]))
    if os.path.isabs(artifact["path"]) or os.path.commonpath([root, path]) != root:
        raise ModelLoadError(f"{uri!r}: its MLmodel names the weights file {artifact['path']!r}, outside the model's "
                             "folder: refused")
    return path


def _get(tree, *keys):
    """tree[k1][k2]... or None where a level is missing or not a mapping (a malformed MLmodel)."""
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree
