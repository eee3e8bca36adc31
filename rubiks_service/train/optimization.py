"""The optimizer of a run and what changes per epoch: the step learning-rate schedule (shift
parameters at lr x shift_lr_mult after warm-up) and, on a GPU, the autocast precision."""
from __future__ import annotations

import torch

from rubiks_service.models.param_groups import parameter_groups

from .config import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                              shift_lr_mult=cfg.optim.shift_lr_mult)
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    return cfg.optim.gamma ** sum(epoch >= step for step in cfg.optim.lr_steps)


def set_learning_rates(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    factor = lr_factor(cfg, epoch)
    for group in optimizer.param_groups:
        mult = cfg.optim.shift_lr_mult if group["name"] == "shift" and epoch >= cfg.optim.shift_warmup_epochs else 1.0
        group["lr"] = cfg.optim.lr * factor * mult


def autocast(cfg: TrainConfig, device: torch.device):
    if cfg.scaling.amp == "off" or device.type != "cuda":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if cfg.scaling.amp == "bf16" else torch.float16)
