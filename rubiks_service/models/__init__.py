"""Model families built on the shift ops: RubiksNet tiers and TSM baselines.

`build_model(name, ...)` is the one entry point the service uses. Imports torch
only (no ray, no mlflow).
"""
from __future__ import annotations

from torch import nn

from .rubiksnet import RELEASE_TIERS, TIERS, VARIANTS, RubiksNet, RubiksNetConfig, rubiksnet
from .tsm import SMALL as TSM_SMALL
from .tsm import TSMResNet, temporal_shift, tsm_resnet, tsm_small

TSM_NAMES = ("tsm-r18", "tsm-r34", "tsm-r50") + tuple(f"tsm-{s}" for s in TSM_SMALL)
MODEL_NAMES = tuple(f"rubiksnet-{t}" for t in TIERS) + TSM_NAMES


def build_model(name: str, *, num_classes: int = 174, num_frames: int = 8, **overrides) -> nn.Module:
    """`rubiksnet-<tier>` (overrides: variant, dropout, temporal_factor, ...), `tsm-r<depth>` or
    `tsm-nano` / `tsm-micro` (overrides: dropout, temporal_shift)."""
    key = name.lower()
    if key in TIERS:
        key = f"rubiksnet-{key}"
    if key.startswith("rubiksnet-") and key.removeprefix("rubiksnet-") in TIERS:
        return rubiksnet(key.removeprefix("rubiksnet-"), num_classes=num_classes, num_frames=num_frames, **overrides)
    if key in ("tsm-r18", "tsm-r34", "tsm-r50"):
        return tsm_resnet(int(key.removeprefix("tsm-r")), num_classes=num_classes, num_frames=num_frames, **overrides)
    if key.removeprefix("tsm-") in TSM_SMALL and key.startswith("tsm-"):
        return tsm_small(key.removeprefix("tsm-"), num_classes=num_classes, num_frames=num_frames, **overrides)
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")


__all__ = [
    "MODEL_NAMES",
    "RELEASE_TIERS",
    "TIERS",
    "VARIANTS",
    "RubiksNet",
    "RubiksNetConfig",
    "TSMResNet",
    "TSM_NAMES",
    "build_model",
    "rubiksnet",
    "temporal_shift",
    "tsm_resnet",
    "tsm_small",
]
