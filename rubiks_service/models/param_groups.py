"""Optimizer parameter groups for shift networks.

Shift parameters (and AQ attention logits) learn at `lr * shift_lr_mult`
(the paper: x0.01) with no weight decay; BN weights and all biases get no
weight decay; everything else gets `weight_decay`.
"""
from __future__ import annotations

from torch import nn

from rubiks_service.ops import RubiksShift2d, RubiksShift3d
from rubiks_service.ops.attention_shift import TemporalAttentionShift

_SHIFT_MODULES = (RubiksShift3d, RubiksShift2d, TemporalAttentionShift)
_NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


def parameter_groups(
    model: nn.Module, *, lr: float, weight_decay: float = 1e-4, shift_lr_mult: float = 0.01
) -> list[dict]:
    groups = {"decay": [], "no_decay": [], "shift": []}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, _SHIFT_MODULES):
                groups["shift"].append(param)
            elif isinstance(module, _NORM_MODULES) or name == "bias":
                groups["no_decay"].append(param)
            else:
                groups["decay"].append(param)
    spec = {
        "decay": {"lr": lr, "weight_decay": weight_decay},
        "no_decay": {"lr": lr, "weight_decay": 0.0},
        "shift": {"lr": lr * shift_lr_mult, "weight_decay": 0.0},
    }
    return [{"name": k, "params": v, **spec[k]} for k, v in groups.items() if v]
