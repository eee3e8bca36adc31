"""Build the model a training config describes (from `model.init_from`'s weights when set), and its
checkpoint payload."""
from __future__ import annotations

from typing import Any

from torch import nn

from rubiks_service.models import RubiksNet, build_model
from rubiks_service.models.checkpoint import checkpoint_dict

from .config import TrainConfig
from .init_from import InitReport, freeze_stages, load_init_weights


def build_from_config(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """`build_model` with the config's model name, its family's settings and the clip length."""
    return build_model(cfg.model.name, num_classes=num_classes, num_frames=cfg.data.segments,
                       **cfg.model.builder_kwargs())


def init_weights(model: nn.Module, cfg: TrainConfig, state: dict, classes: list[str], *,
                 source: str | None = None) -> InitReport:
    """`model.init_from`'s checkpoint (its contents, `init_from.read_init_checkpoint`) loaded into `model`,
    and its first stages frozen."""
    report = load_init_weights(model, state, model_name=cfg.model.name, classes=classes,
                               temporal_init=cfg.model.inflate_temporal, source=source or cfg.model.init_from)
    report.frozen = freeze_stages(model, cfg.model.freeze_stages)
    return report


def model_payload(model: nn.Module, cfg: TrainConfig, **extra: Any) -> dict[str, Any]:
    """The release's checkpoint format for RubiksNet, a plain {arch, model} dict for the baselines."""
    if isinstance(model, RubiksNet):
        return checkpoint_dict(model, **extra)
    return {"arch": cfg.model.name, "num_frames": cfg.data.segments, "model": model.state_dict(), **extra}
