"""Model families built on the shift ops: RubiksNet tiers and TSM baselines.

`build_model(name, num_classes=, num_frames=, **options)` is the one entry point the service uses,
as timm's `create_model`: every model name maps to its family's builder (`MODELS`), and `options`
are the family's own keywords (`ModelEntry.options`; a training config passes exactly those).
Imports torch only (no ray, no mlflow).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from . import rubiksnet as _rubiksnet
from . import tsm as _tsm
from .rubiksnet import RELEASE_TIERS, TIERS, VARIANTS, RubiksNet, RubiksNetConfig, rubiksnet
from .tsm import TSMResNet, temporal_shift, tsm_resnet, tsm_small


@dataclass(frozen=True)
class ModelEntry:
    family: str  # "rubiksnet" (learned shifts) or "tsm" (the fixed-shift baseline)
    build: Callable[..., nn.Module]  # (num_classes=, num_frames=, **options) -> model
    options: tuple[str, ...]  # the keywords a training config sets (the builder takes these and more)


MODELS: dict[str, ModelEntry] = {
    **{f"rubiksnet-{tier}": ModelEntry("rubiksnet", partial(rubiksnet, tier), _rubiksnet.OPTIONS) for tier in TIERS},
    **{f"tsm-r{depth}": ModelEntry("tsm", partial(tsm_resnet, depth), _tsm.OPTIONS) for depth in _tsm.DEPTHS},
    **{f"tsm-{size}": ModelEntry("tsm", partial(tsm_small, size), _tsm.OPTIONS) for size in _tsm.SMALL},
}
MODEL_NAMES = tuple(MODELS)
FAMILIES = tuple(dict.fromkeys(entry.family for entry in MODELS.values()))
TSM_NAMES = tuple(name for name, entry in MODELS.items() if entry.family == "tsm")


def model_entry(name: str) -> ModelEntry:
    """The entry of a model name (any case; a bare RubiksNet tier such as "tiny" names its rubiksnet-*)."""
    key = name.lower()
    key = f"rubiksnet-{key}" if key in TIERS else key
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    return MODELS[key]


def build_model(name: str, *, num_classes: int = 174, num_frames: int = 8, **options) -> nn.Module:
    """`rubiksnet-<tier>` (options: variant, dropout, temporal_factor, ...), `tsm-r<depth>` or
    `tsm-nano` / `tsm-micro` (options: dropout, temporal_shift)."""
    return model_entry(name).build(num_classes=num_classes, num_frames=num_frames, **options)


__all__ = [
    "FAMILIES",
    "MODELS",
    "MODEL_NAMES",
    "RELEASE_TIERS",
    "TIERS",
    "VARIANTS",
    "ModelEntry",
    "RubiksNet",
    "RubiksNetConfig",
    "TSMResNet",
    "TSM_NAMES",
    "build_model",
    "model_entry",
    "rubiksnet",
    "temporal_shift",
    "tsm_resnet",
    "tsm_small",
]
