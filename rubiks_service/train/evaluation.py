"""Evaluation: view-averaged accuracy of a model over {clip, label, valid} batches, in a Train
worker (its val shard, counts summed over the workers) or on the driver (a manifest decoded
afresh: `trainer.evaluate`)."""
from __future__ import annotations

import torch

from rubiks_service.data.clip_spec import ClipMode
from rubiks_service.data.quality import DataQualityMonitor, clip_batches

from .config import TrainConfig
from .metrics import AccuracyCounter


def view_averaged_logits(model, clips: torch.Tensor) -> torch.Tensor:
    """(N, V, T, 3, S, S) -> (N, classes): logits averaged over the V views."""
    n, v = clips.shape[:2]
    return model(clips.flatten(0, 1)).view(n, v, -1).mean(dim=1)


def accuracy(model, batches, num_classes: int, min_valid_fraction: float, device="cpu") -> AccuracyCounter:
    """View-averaged accuracy of `model` over {clip, label, valid} batches (bad rows dropped and
    counted, too many of them an error): this process's counts, not yet reduced."""
    model.eval()
    acc = AccuracyCounter(num_classes)
    monitor = DataQualityMonitor(min_valid_fraction)
    with torch.no_grad():
        for clips, labels in clip_batches(batches, monitor, device):
            acc.update(view_averaged_logits(model, clips), labels)
    return acc


def evaluate_shard(model, source, shard, protocol: ClipMode, epoch: int, num_classes: int, cfg: TrainConfig,
                   device) -> AccuracyCounter:
    """Accuracy of this worker's val shard under `protocol` (served by the run's `ClipSource`), summed
    over the workers."""
    acc = accuracy(model, source.batches(shard, protocol, epoch), num_classes, cfg.data.min_valid_fraction, device)
    acc.all_reduce()
    return acc
