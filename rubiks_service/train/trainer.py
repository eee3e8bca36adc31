"""Driver side of a training run: datasets, the TorchTrainer, final evaluation, loading checkpoints.

The TrainConfig object itself travels to the workers in `train_loop_config` (pydantic models pickle;
every node imports this package), so a worker never re-validates a dict."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch

from rubiks_service import storage
from rubiks_service.data.clip_spec import ClipMode
from rubiks_service.data.manifest import read_manifest
from rubiks_service.models.checkpoint import read_checkpoint_file

from .clip_source import DecodedClips, ShardedFrames, clip_source
from .config import TrainConfig
from .evaluation import accuracy
from .metrics import AccuracyCounter
from .loop import CHECKPOINT_FILE, train_loop_per_worker
from .model_factory import build_from_config


@dataclass
class TrainOutcome:
    metrics: dict  # last epoch's reported metrics
    checkpoint_path: str | None
    classes: list[str]
    history: list[dict]  # every epoch's metrics, across restarts (carried in the checkpoint)
    confusion: dict = field(default_factory=dict)  # protocol -> confusion matrix the workers evaluated


def fit(cfg: TrainConfig, *, callbacks: list | None = None, run_name: str | None = None,
        init_state: dict | None = None) -> TrainOutcome:
    """Train with Ray Train. Starting again with the same name and storage path resumes the run.
    `init_state`: the contents of `model.init_from`'s checkpoint (tracking/init_source.py) for the workers."""
    import ray.train
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    import ray.data

    # per-operator bars from every trial interleave into noise; the epoch lines are the progress
    ray.data.DataContext.get_current().enable_progress_bars = os.environ.get("RUBIKS_DATA_PROGRESS") == "1"
    check_resume(cfg, run_name)  # a refused checkpoint fails once here, not on every FailureConfig retry
    datasets, classes = clip_source(cfg).datasets()
    # a bucket prefix comes with its filesystem (endpoint set): checkpoints, resume and restarts after a
    # failure then need no disk shared by the nodes
    storage_path, storage_filesystem = storage.ray_storage(cfg.storage_path)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"train": cfg, "classes": classes, "init_state": init_state},
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.scaling.num_workers,
            use_gpu=cfg.scaling.use_gpu,
            resources_per_worker={"CPU": cfg.scaling.cpus_per_worker} | ({"GPU": 1} if cfg.scaling.use_gpu else {}),
        ),
        run_config=RunConfig(
            name=run_folder(cfg, run_name),
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks or [],
        ),
        datasets=datasets or None,  # none when the workers read their frames themselves
        dataset_config=ray.train.DataConfig(datasets_to_split=list(datasets)) if datasets else None,
    )
    result = trainer.fit()
    ckpt = _checkpoint_file(result.checkpoint)
    state = read_training_checkpoint(ckpt) if ckpt else {}
    return TrainOutcome(result.metrics or {}, ckpt, classes, state.get("history", []), state.get("confusion", {}))


def run_folder(cfg: TrainConfig, run_name: str | None = None) -> str:
    """The run's folder name under the storage path (Ray Train's RunConfig.name)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_name or cfg.name)


RESUME_KEYS = ("model", "optimizer", "epoch")  # what loop.restore reads from the checkpoint it resumes from


def check_resume(cfg: TrainConfig, run_name: str | None = None) -> None:
    """The checkpoints a restarted run would resume from, read here on the driver (weights only) and
    checked for what `loop.restore` needs. A crafted or malformed one is a `CheckpointError` now: in the
    workers it would fail every attempt that FailureConfig retries, each with its traceback."""
    import glob

    from rubiks_service.models.checkpoint import CheckpointError

    if storage.is_uri(cfg.storage_path):
        return
    folder = os.path.join(os.path.abspath(cfg.storage_path), run_folder(cfg, run_name))
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "checkpoint_*", CHECKPOINT_FILE))):
        state = read_checkpoint_file(path)  # CheckpointError for a file that needs code to unpickle
        if (not isinstance(state, dict) or any(k not in state for k in RESUME_KEYS)
                or not isinstance(state["model"], dict) or not isinstance(state["optimizer"], dict)
                or isinstance(state["epoch"], bool) or not isinstance(state["epoch"], int)):
            raise CheckpointError(f"cannot resume from {path}: not a checkpoint written by `rubiks train` (needs "
                                  f"{', '.join(RESUME_KEYS)}); remove that folder or train under another name")


def check_manifests(cfg: TrainConfig) -> None:
    """The run's manifests parsed on the driver, before Ray starts: one that is not a table (binary, not
    UTF-8, a folder), has bad rows (num_frames) or no usable row is a `ManifestError` of one line."""
    from rubiks_service.data.manifest import ManifestError

    d = cfg.data
    classes = read_manifest(d.train_manifest, data_root=d.data_root).classes
    for path in (d.train_manifest, d.val_manifest):
        manifest = read_manifest(path, data_root=d.data_root, classes=classes)
        if not manifest.records:
            raise ManifestError(f"{path}: no usable rows ({len(manifest.skipped)} skipped)")


def check_storage(cfg: TrainConfig) -> None:
    """Fail now, in one line, when the run's manifests or frame shards cannot be read or its storage_path's
    bucket is refused or unreachable: before Ray starts and an MLflow run opens. `StorageError` or
    `ConfigError`."""
    from rubiks_service.config_files import ConfigError
    from rubiks_service.data.frame_shards import FramesError

    d = cfg.data
    storage.check_access(read=[d.train_manifest, d.val_manifest], write=[cfg.storage_path])
    if d.train_frames is not None:
        try:
            ShardedFrames(cfg).metas()
        except FramesError as exc:
            raise ConfigError(str(exc)) from None


def _checkpoint_file(checkpoint) -> str | None:
    """The file of a Ray Train checkpoint: a local path, or an `s3://` URI when the run's storage is a bucket."""
    if checkpoint is None:
        return None
    folder = storage.to_uri(checkpoint.path) if checkpoint.filesystem.type_name == "s3" else checkpoint.path
    return storage.join(folder, CHECKPOINT_FILE)


def read_training_checkpoint(path: str) -> dict:
    """A checkpoint file (local or `s3://`), read with weights only: refuses crafted pickles."""
    with storage.local_copy(path) as local:
        return read_checkpoint_file(local)


def load_trained_model(checkpoint_file: str) -> tuple[torch.nn.Module, TrainConfig, list[str]]:
    """A checkpoint written by training (local or `s3://`) -> (model in eval mode, its training config, its
    classes). A release-format checkpoint (weights only) is `models.checkpoint.load_release_checkpoint`'s."""
    state = read_training_checkpoint(checkpoint_file)
    return model_from_training(state, checkpoint_file)


def is_training_checkpoint(state) -> bool:
    return isinstance(state, dict) and "config" in state and "classes" in state and "model" in state


def model_from_training(state: dict, source: str) -> tuple[torch.nn.Module, TrainConfig, list[str]]:
    """The contents of a training checkpoint (already read) -> (eval-mode model, config, classes)."""
    if not is_training_checkpoint(state):
        raise ValueError(f"{source}: not a checkpoint written by `rubiks train` (no config/classes)")
    cfg = TrainConfig.model_validate(state["config"])
    model = build_from_config(cfg, len(state["classes"]))
    model.load_state_dict(state["model"])
    return model.eval(), cfg, list(state["classes"])


def evaluate(model: torch.nn.Module, cfg: TrainConfig, classes: list[str], protocol: ClipMode | str,
             manifest: str | None = None) -> dict[str, float]:
    """Accuracy of a trained model under the 1-clip or 2-clip protocol (views averaged), the manifest
    (default: the run's val manifest) decoded afresh whatever the run's clip source was."""
    return evaluate_counts(model, cfg, classes, protocol, manifest).result(protocol)


def evaluate_counts(model: torch.nn.Module, cfg: TrainConfig, classes: list[str], protocol: ClipMode | str,
                    manifest: str | None = None) -> AccuracyCounter:
    """`evaluate`'s counts: its accuracy (`.result`) and confusion matrix (`.confusion`)."""
    d = cfg.data
    ds, _ = DecodedClips(cfg).dataset(manifest or d.val_manifest, protocol, classes=classes)
    return accuracy(model, ds.iter_torch_batches(batch_size=d.batch_size), len(classes), d.min_valid_fraction)


def class_list(cfg: TrainConfig) -> list[str]:
    return read_manifest(cfg.data.train_manifest, data_root=cfg.data.data_root).classes
