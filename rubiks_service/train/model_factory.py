"""Build the model a training config describes, and its checkpoint payload."""
from __future__ import annotations

from typing import Any

from torch import nn

from rubiks_service.models import RubiksNet, build_model
from rubiks_service.models.checkpoint import checkpoint_dict

from .config import TrainConfig


def build_from_config(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """`build_model` with the config's model name, its family's settings and the clip length."""
    return build_model(cfg.model.name, num_classes=num_classes, num_frames=cfg.data.segments,
                       **cfg.model.builder_kwargs())


def model_payload(model: nn.Module, cfg: TrainConfig, **extra: Any) -> dict[str, Any]:
    """The release's checkpoint format for RubiksNet, a plain {arch, model} dict for the baselines."""
    if isinstance(model, RubiksNet):
        return checkpoint_dict(model, **extra)
    return {"arch": cfg.model.name, "num_frames": cfg.data.segments, "model": model.state_dict(), **extra}
