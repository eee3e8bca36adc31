"""MODEL, as `rubiks predict | eval | export` take it, to a loaded model.

    path/to/checkpoint.pt         a training checkpoint (config + classes inside) or a
                                  release-format checkpoint (tier, variant, weights only)
    s3://bucket/…/checkpoint.pt   the same, in object storage (rubiks_service.storage)
    runs:/<run_id>/model          the MLflow model a training run logged
    models:/<name>/<version>      a registered version, or models:/<name>@<alias>
    path/to/model.onnx            a file `rubiks export --format onnx` wrote (predict only: serving.onnx_model)

An MLflow model is downloaded and only its weights file is read, with weights_only=True:
loading never runs the model's Python code (what `mlflow.pyfunc.load_model` would do).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from torch import nn

from rubiks_service import storage
from rubiks_service.models.checkpoint import CheckpointError, model_from_release, read_checkpoint_file
from rubiks_service.redact import one_line
from rubiks_service.tracking.model_files import ModelLoadError, check_store_exists, fetch_mlflow_model, is_mlflow_uri
from rubiks_service.train.config import DataConfig, TrainConfig
from rubiks_service.train.trainer import is_training_checkpoint, model_from_training

RELEASE_CROP = 224  # the paper's input; a release checkpoint does not record it
MIN_CROP, MAX_CROP = 8, 1024  # train.config.DataConfig's crop_size bounds


@dataclass
class LoadedModel:
    model: nn.Module  # eval mode, training form (see models.inference for the inference form)
    classes: list[str]
    segments: int  # frames per clip
    crop_size: int
    config: TrainConfig | None  # None for a release-format checkpoint
    source: str  # what the user gave
    # where it was found: {file} for a file; {uri, store, name, version, alias, run_id, model_id} for MLflow
    origin: dict = field(default_factory=dict)

    def train_config(self, manifest: str) -> TrainConfig:
        """The training config, or for a release checkpoint one that evaluates `manifest` at its input size."""
        if self.config is not None:
            if self.config.data.crop_size == self.crop_size:
                return self.config
            return self.config.model_copy(update={"data": self.config.data.model_copy(
                update={"crop_size": self.crop_size})})
        return TrainConfig(data=DataConfig(train_manifest=manifest, val_manifest=manifest,
                                           segments=self.segments, crop_size=self.crop_size))


def load_model_file(path: str, *, source: str | None = None, crop_size: int | None = None) -> LoadedModel:
    """A checkpoint file: a training checkpoint, or a release-format one (class names `0..K-1`
    unless it lists `classes`; input `crop_size`, default 224)."""
    if crop_size is not None and not MIN_CROP <= crop_size <= MAX_CROP:
        raise ModelLoadError(f"--size must be {MIN_CROP}..{MAX_CROP}, got {crop_size}")
    try:
        state = read_checkpoint_file(path)
        if is_training_checkpoint(state):
            _check_classes(state["classes"], path)
            model, cfg, classes = model_from_training(state, path)
            return LoadedModel(model, classes, cfg.data.segments, crop_size or cfg.data.crop_size, cfg,
                               source or path)
        model = model_from_release(state, path).eval()
        classes = [str(c) for c in _check_classes(state.get("classes", range(model.cfg.num_classes)), path)]
    except CheckpointError as exc:
        raise ModelLoadError(one_line(exc)) from None
    # a checkpoint that reads safely but holds the wrong things (`model` an int, a state dict that does
    # not fit, a config that does not validate): what torch / pydantic raise for it, as one line
    except (ValueError, RuntimeError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ModelLoadError(f"{source or path}: not a usable checkpoint ({type(exc).__name__}: "
                             f"{one_line(exc, limit=200)})") from None
    return LoadedModel(model, classes, model.cfg.num_frames, crop_size or RELEASE_CROP, None, source or path)


def _check_classes(classes, path: str):
    if isinstance(classes, range):
        return classes
    if not isinstance(classes, list | tuple) or not classes or not all(isinstance(c, str | int) for c in classes):
        raise CheckpointError(f"{path}: `classes` must be a non-empty list of class names, found "
                              f"{type(classes).__name__}")
    return classes


def resolve_model(spec: str, *, tracking_uri: str | None = None, storage_path: str = "runs",
                  crop_size: int | None = None) -> LoadedModel:
    """MODEL (a checkpoint path or `s3://` URI, `runs:/…` or `models:/…`) -> LoadedModel; `ModelLoadError`
    otherwise."""
    from .onnx_model import is_onnx_file, load_onnx_model

    load = load_onnx_model if is_onnx_file(spec) else load_model_file
    if storage.is_uri(spec):
        try:
            with storage.local_copy(spec) as local:  # fetched to a temporary file, removed after loading
                loaded = load(local, source=spec, crop_size=crop_size)
        except storage.StorageError as exc:
            raise ModelLoadError(str(exc)) from None
        loaded.origin = {**loaded.origin, "file": spec}
        return loaded
    if not is_mlflow_uri(spec):
        if not os.path.exists(spec):
            raise ModelLoadError(f"model not found: {spec} (a checkpoint file, runs:/<run_id>/model or "
                                 f"models:/<name>/<version|@alias>)")
        loaded = load(spec, crop_size=crop_size)
        loaded.origin = {**loaded.origin, "file": os.path.abspath(spec)}
        return loaded
    from rubiks_service.tracking.mlflow_store import check_reachable, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, storage_path)
    check_store_exists(spec, uri, configured=bool(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")))
    check_reachable(uri)  # an unreachable server: one line within seconds, not minutes of retries
    with tempfile.TemporaryDirectory(prefix="rubiks-model-") as tmp:
        weights, origin = fetch_mlflow_model(spec, uri, tmp)
        loaded = load_model_file(weights, source=spec, crop_size=crop_size)
    origin.pop("artifact_uri", None)  # where MLflow keeps the files: not what the user asked about
    loaded.origin = origin
    return loaded
