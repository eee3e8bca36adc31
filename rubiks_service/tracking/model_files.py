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


def download_mlflow_model(uri: str, tracking_uri: str, dst: str) -> str:
    """The MLflow model at `uri` into `dst`; returns the path of its weights file."""
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stderr stays one line per problem
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=_run_artifact_uri(uri, tracking_uri), dst_path=dst,
                                                    tracking_uri=tracking_uri)
    except (MlflowException, OSError) as exc:
        raise ModelLoadError(f"cannot fetch MLflow model {uri!r} from {redact_url(tracking_uri)}: {one_line(exc)}") from None
    return weights_path(local, uri)


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


def _run_artifact_uri(uri: str, tracking_uri: str) -> str:
    """A `models:/` URI looked up in `tracking_uri`'s registry -> where that version's files are."""
    found = model_version(uri, tracking_uri)
    if found is None:
        return uri
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version_download_uri(*found)
