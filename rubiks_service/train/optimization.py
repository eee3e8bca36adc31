"""The optimizer of a run and what changes per epoch: the step learning-rate schedule (shift
parameters at lr x shift_lr_mult after warm-up; a loaded backbone at lr x backbone_lr_mult) and, on a
GPU, the autocast precision."""
from __future__ import annotations

import math

import torch

from rubiks_service.models.param_groups import parameter_groups

from .config import TrainConfig
from .init_from import head_prefix


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                              shift_lr_mult=cfg.optim.shift_lr_mult)
    if cfg.optim.backbone_lr_mult != 1.0:
        groups = split_head(model, groups, cfg.optim.backbone_lr_mult)
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)


def split_head(model: torch.nn.Module, groups: list[dict], backbone_lr_mult: float) -> list[dict]:
    """Each group split in two: the classifier head's parameters, and the backbone's at `lr_mult`."""
    head = {id(p) for name, p in model.named_parameters() if name.startswith(head_prefix(model))}
    out = []
    for group in groups:
        for part, mult in (("head", 1.0), ("backbone", backbone_lr_mult)):
            params = [p for p in group["params"] if (id(p) in head) == (part == "head")]
            if params:
                out.append({**group, "params": params, "lr_mult": mult, "lr": group["lr"] * mult,
                            "part": part})
    return out


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """The epoch's learning rate / optim.lr: linear warm-up, then the step or cosine schedule."""
    o = cfg.optim
    if epoch < o.warmup_epochs:
        return (epoch + 1) / (o.warmup_epochs + 1)
    if o.schedule == "cosine":  # over the epochs after warm-up; the last epoch still learns (not 0)
        span = o.epochs - o.warmup_epochs
        return 0.5 * (1 + math.cos(math.pi * (epoch - o.warmup_epochs) / span))
    return o.gamma ** sum(epoch >= step for step in o.lr_steps)


def set_learning_rates(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    factor = lr_factor(cfg, epoch)
    for group in optimizer.param_groups:
        mult = cfg.optim.shift_lr_mult if group["name"] == "shift" and epoch >= cfg.optim.shift_warmup_epochs else 1.0
        group["lr"] = cfg.optim.lr * factor * mult * group.get("lr_mult", 1.0)


def autocast(cfg: TrainConfig, device: torch.device):
    if cfg.scaling.amp == "off" or device.type != "cuda":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if cfg.scaling.amp == "bf16" else torch.float16)
