"""Build the model a training config describes, and its checkpoint payload."""
from __future__ import annotations

from typing import Any

from torch import nn

from rubiks_service.models import RubiksNet, build_model
from rubiks_service.models.checkpoint import checkpoint_dict

from .config import TrainConfig


def build_from_config(cfg: TrainConfig, num_classes: int) -> nn.Module:
    m = cfg.model
    if m.name.startswith("tsm-"):
        return build_model(m.name, num_classes=num_classes, num_frames=cfg.data.segments, dropout=m.dropout,
                           temporal_shift=m.temporal_shift)
    return build_model(
        m.name, num_classes=num_classes, num_frames=cfg.data.segments, variant=m.variant, dropout=m.dropout,
        temporal_factor=m.temporal_factor, grad_norm_form=m.grad_norm_form, normalize_grad=m.normalize_grad,
        shift_init=m.shift_init, fixed_shifts=m.fixed_shifts, temporal_shift=m.temporal_shift,
    )


def model_payload(model: nn.Module, cfg: TrainConfig, **extra: Any) -> dict[str, Any]:
    """The release's checkpoint format for RubiksNet, a plain {arch, model} dict for the baselines."""
    if isinstance(model, RubiksNet):
        return checkpoint_dict(model, **extra)
    return {"arch": cfg.model.name, "num_frames": cfg.data.segments, "model": model.state_dict(), **extra}
