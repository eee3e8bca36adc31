"""Model families built on the shift ops: RubiksNet tiers and TSM baselines.

`build_model(name, ...)` is the one entry point the service uses. Imports torch
only (no ray, no mlflow).
"""
from __future__ import annotations

from torch import nn

from .rubiksnet import RELEASE_TIERS, TIERS, VARIANTS, RubiksNet, RubiksNetConfig, rubiksnet
from .tsm import TSMResNet, temporal_shift, tsm_resnet

MODEL_NAMES = tuple(f"rubiksnet-{t}" for t in TIERS) + ("tsm-r18", "tsm-r34", "tsm-r50")


def build_model(name: str, *, num_classes: int = 174, num_frames: int = 8, **overrides) -> nn.Module:
    """`rubiksnet-<tier>` (overrides: variant, dropout, temporal_factor, ...) or `tsm-r<depth>`."""
    key = name.lower()
    if key in TIERS:
        key = f"rubiksnet-{key}"
    if key.startswith("rubiksnet-") and key.removeprefix("rubiksnet-") in TIERS:
        return rubiksnet(key.removeprefix("rubiksnet-"), num_classes=num_classes, num_frames=num_frames, **overrides)
    if key in ("tsm-r18", "tsm-r34", "tsm-r50"):
        return tsm_resnet(int(key.removeprefix("tsm-r")), num_classes=num_classes, num_frames=num_frames, **overrides)
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")


__all__ = [
    "MODEL_NAMES",
    "RELEASE_TIERS",
    "TIERS",
    "VARIANTS",
    "RubiksNet",
    "RubiksNetConfig",
    "TSMResNet",
    "build_model",
    "rubiksnet",
    "temporal_shift",
    "tsm_resnet",
]
