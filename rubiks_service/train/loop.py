"""The per-worker training loop run by Ray Train (DDP: gloo on CPU, NCCL on GPU).

Each epoch: set the learning rates (step schedule; shift lr x shift_lr_mult after
warm-up) and the AQ temperature, train on this worker's shard of the train
dataset, evaluate on its shard of the val dataset (1-clip; counts summed across
workers), then report metrics and a checkpoint. A restarted run (same name, or
after a worker failure) resumes from the latest checkpoint, so a failure costs
at most one epoch. Metrics go to Ray Train's report (the driver-side callbacks
log them to MLflow as they arrive); this module knows nothing of MLflow.
"""
from __future__ import annotations

import os
import tempfile
import time

import torch
import torch.nn.functional as F

from rubiks_service.data.pipeline import DataQualityMonitor, clip_batches
from rubiks_service.models.checkpoint import read_checkpoint_file
from rubiks_service.models.param_groups import parameter_groups
from rubiks_service.ops.attention_shift import (
    attention_shift_layers,
    budget_loss,
    exponential_temperature,
    realised_budget,
    set_temperature,
)

from .config import TrainConfig
from .datasets import epoch_batches
from .metrics import AccuracyCounter
from .model_factory import build_from_config, model_payload

CHECKPOINT_FILE = "checkpoint.pt"


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    return cfg.optim.gamma ** sum(epoch >= step for step in cfg.optim.lr_steps)


def set_learning_rates(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    factor = lr_factor(cfg, epoch)
    for group in optimizer.param_groups:
        mult = cfg.optim.shift_lr_mult if group["name"] == "shift" and epoch >= cfg.optim.shift_warmup_epochs else 1.0
        group["lr"] = cfg.optim.lr * factor * mult


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                              shift_lr_mult=cfg.optim.shift_lr_mult)
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.scaling.amp == "off" or device.type != "cuda":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if cfg.scaling.amp == "bf16" else torch.float16)


def train_loop_per_worker(config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch

    cfg = TrainConfig.model_validate(config["train"])
    classes = list(config["classes"])
    num_classes = len(classes)
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.manual_seed(cfg.seed + rank)

    model = build_from_config(cfg, num_classes)
    bare = model
    aq_layers = attention_shift_layers(bare)
    optimizer = make_optimizer(model, cfg)
    start_epoch, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            state = read_checkpoint_file(os.path.join(d, CHECKPOINT_FILE))  # refuses a crafted pickle
        bare.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        history = list(state.get("history", []))
        if rank == 0:
            print(f"[train] resuming from epoch {start_epoch} ({checkpoint.path})", flush=True)
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.scaling.amp == "fp16" and device.type == "cuda")
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    anneal = cfg.aq.anneal_epochs or cfg.optim.epochs

    for epoch in range(start_epoch, cfg.optim.epochs):
        set_learning_rates(optimizer, cfg, epoch)
        if aq_layers:
            set_temperature(bare, exponential_temperature(epoch, anneal, cfg.aq.temperature_start, cfg.aq.temperature_end))
        model.train()
        monitor = DataQualityMonitor(cfg.data.min_valid_fraction)
        train_acc = AccuracyCounter(num_classes)
        loss_sum, steps, clips_seen, start = 0.0, 0, 0, time.perf_counter()
        for clips, labels in clip_batches(epoch_batches(train_shard, cfg, "train", epoch), monitor, device):
            clips = clips[:, 0]  # one view in training
            with _autocast(cfg, device):
                logits = model(clips)
                loss = F.cross_entropy(logits, labels)
                if aq_layers and cfg.aq.weight > 0:
                    loss = loss + cfg.aq.weight * budget_loss(aq_layers, cfg.aq.budget)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            train_acc.update(logits, labels)
            loss_sum += loss.item()
            steps += 1
            clips_seen += len(labels)
            if rank == 0 and steps % cfg.log_every == 0:
                rate = clips_seen / (time.perf_counter() - start)
                print(f"[train] epoch {epoch + 1}/{cfg.optim.epochs} step {steps} loss {loss.item():.3f} "
                      f"{rate:.1f} clips/s (worker 0)", flush=True)
        epoch_time = time.perf_counter() - start
        train_acc.all_reduce()
        val = evaluate_shard(model, val_shard, num_classes, cfg, device, epoch)
        metrics = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(steps, 1),
            **train_acc.result("train_"),
            **val,
            "lr": optimizer.param_groups[0]["lr"],
            "clips_per_s": clips_seen * ctx.get_world_size() / max(epoch_time, 1e-9),
            "bad_videos": monitor.bad,
            "resumed_from_epoch": start_epoch,  # > 0: this attempt continued from a checkpoint
            "node_id": ray.get_runtime_context().get_node_id(),  # where rank 0 ran (multi-node placement)
        }
        if cfg.data.cache_frames and epoch == cfg.optim.epochs - 1:
            # cached frames serve any protocol, so the end-of-run evaluation happens here, on every
            # worker's shard; the last epoch's validation already is the 1-clip protocol
            metrics.update({f"1clip_{key.removeprefix('val_')}": value for key, value in val.items()})
            for protocol in sorted(set(cfg.eval_protocols) - {"1clip"}):
                metrics.update(evaluate_shard(model, val_shard, num_classes, cfg, device, epoch, protocol))
        if aq_layers:
            metrics["aq_temperature"] = float(aq_layers[0].T)
            metrics["realised_budget"] = realised_budget(aq_layers)
        history.append(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                payload = model_payload(bare, cfg, optimizer=optimizer.state_dict(), epoch=epoch,
                                        config=cfg.model_dump(), classes=classes, history=history)
                torch.save(payload, os.path.join(tmp, CHECKPOINT_FILE))
                ckpt = ray.train.Checkpoint.from_directory(tmp)
                print(f"[train] epoch {epoch + 1}/{cfg.optim.epochs} loss {metrics['train_loss']:.3f} "
                      f"val top1 {metrics['val_top1']:.3f} {metrics['clips_per_s']:.1f} clips/s", flush=True)
            ray.train.report(metrics, checkpoint=ckpt)


def evaluate_shard(model, shard, num_classes: int, cfg: TrainConfig, device, epoch: int,
                   protocol: str = "1clip") -> dict[str, float]:
    """Accuracy of this worker's val shard, summed over workers: `val_*` for the per-epoch
    1-clip check, `<protocol>_*` for another protocol (cached frames only)."""
    batches = epoch_batches(shard, cfg, protocol, epoch)
    acc = accuracy(model, batches, num_classes, cfg.data.min_valid_fraction, device)
    acc.all_reduce()
    return acc.result("val_" if protocol == "1clip" else f"{protocol}_")


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


def view_averaged_logits(model, clips: torch.Tensor) -> torch.Tensor:
    """(N, V, T, 3, S, S) -> (N, classes): logits averaged over the V views."""
    n, v = clips.shape[:2]
    return model(clips.flatten(0, 1)).view(n, v, -1).mean(dim=1)
