"""The per-worker training loop run by Ray Train (DDP: gloo on CPU, NCCL on GPU), as named steps:

    start_worker           the run's TrainConfig (the object itself, sent by the driver) and classes in;
                           model, optimizer, clip source and shards set up; restored from the latest
                           checkpoint if there is one (a restarted run, or after a worker failure)
    for each epoch:
      apply_schedule       learning rates (step schedule; shift lr x shift_lr_mult after warm-up)
                           and the RS-AQ temperature
      train_epoch          one pass over this worker's train shard
      validate             1-clip accuracy of its val shard, counts summed across workers
      end_of_run_protocols after the last epoch: the protocols the clip source serves in the workers
      checkpoint_and_report  checkpoint (rank 0) and metrics to Ray Train's report

A failure therefore costs at most one epoch. The driver-side callbacks log the reports to MLflow
as they arrive; this module knows nothing of MLflow. Metric names: `metric_names`.
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rubiks_service.data.clip_spec import ClipMode
from rubiks_service.data.quality import DataQualityMonitor, clip_batches
from rubiks_service.models.checkpoint import read_checkpoint_file
from rubiks_service.ops.attention_shift import (
    attention_shift_layers,
    budget_loss,
    convert_attention_shifts,
    exponential_temperature,
    realised_budget,
    set_temperature,
)

from . import metric_names as names
from .clip_source import ClipSource, clip_source
from .config import TrainConfig
from .evaluation import evaluate_shard
from .metrics import AccuracyCounter
from .model_factory import build_from_config, init_weights, model_payload
from .optimization import autocast, make_optimizer, set_learning_rates

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class WorkerRun:
    """What one Train worker holds for the whole run."""

    cfg: TrainConfig
    classes: list[str]
    source: ClipSource
    rank: int
    world_size: int
    bare: torch.nn.Module  # the model itself: checkpoints, RS-AQ layers
    model: torch.nn.Module  # as prepared by Ray Train (DDP-wrapped with several workers)
    optimizer: torch.optim.Optimizer
    device: torch.device
    scaler: torch.amp.GradScaler
    shards: dict  # "train", "val": this worker's dataset shards
    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)  # every epoch's metrics, across restarts
    confusion: dict = field(default_factory=dict)  # protocol -> confusion matrix, after the last epoch

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def aq_layers(self) -> list:
        return attention_shift_layers(self.bare)


def train_loop_per_worker(config: dict) -> None:
    """Ray Train's entry point: `config` is {"train": TrainConfig, "classes": [...], "init_state": dict | None}."""
    run = start_worker(config["train"], list(config["classes"]), config.get("init_state"))
    last = run.cfg.optim.epochs - 1
    for epoch in range(run.start_epoch, run.cfg.optim.epochs):
        apply_schedule(run, epoch)
        metrics = train_epoch(run, epoch)
        val = validate(run, epoch)
        metrics.update(val.result(names.VAL))
        metrics.update({names.RESUMED_FROM_EPOCH: run.start_epoch, names.NODE_ID: _node_id()})
        if epoch == last:
            metrics.update(end_of_run_protocols(run, epoch, val))
        metrics.update(aq_metrics(run))
        checkpoint_and_report(run, epoch, metrics)


def start_worker(cfg: TrainConfig, classes: list[str], init_state: dict | None = None) -> WorkerRun:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    # as many compute threads as CPUs reserved (at least one), not torch's default of every core: workers
    # side by side then do not oversubscribe the machine, and a run computes the same on any machine size
    torch.set_num_threads(max(1, int(cfg.scaling.cpus_per_worker)))
    torch.manual_seed(cfg.seed + rank)
    bare = build_from_config(cfg, len(classes))
    if init_state is not None:  # model.init_from's checkpoint (the driver resolved, read and checked it)
        init_weights(bare, cfg, init_state, classes)
    optimizer = make_optimizer(bare, cfg)
    start_epoch, history = restore(bare, optimizer, rank)  # before Ray Train wraps the model
    model = ray.train.torch.prepare_model(bare)
    device = ray.train.torch.get_device()
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.scaling.amp == "fp16" and device.type == "cuda")
    source = clip_source(cfg)
    # none when the clip source reads its frames itself (frame shards held in the worker)
    shards = {split: ray.train.get_dataset_shard(split) if source.needs_datasets else None for split in ("train", "val")}
    return WorkerRun(cfg, classes, source, rank, ctx.get_world_size(), bare, model, optimizer, device,
                     scaler, shards, start_epoch, history)


def restore(bare: torch.nn.Module, optimizer: torch.optim.Optimizer, rank: int) -> tuple[int, list[dict]]:
    """Weights and optimizer state from Ray Train's latest checkpoint, if any; (next epoch, history)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return 0, []
    with checkpoint.as_directory() as d:
        state = read_checkpoint_file(os.path.join(d, CHECKPOINT_FILE))  # refuses a crafted pickle
    bare.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    start_epoch = state["epoch"] + 1
    if rank == 0:
        print(f"[train] resuming from epoch {start_epoch} ({checkpoint.path})", flush=True)
    return start_epoch, list(state.get("history", []))


def apply_schedule(run: WorkerRun, epoch: int) -> None:
    cfg = run.cfg
    set_learning_rates(run.optimizer, cfg, epoch)
    if run.aq_layers:
        anneal = cfg.aq.anneal_epochs or cfg.optim.epochs
        set_temperature(run.bare, exponential_temperature(epoch, anneal, cfg.aq.temperature_start,
                                                          cfg.aq.temperature_end))


def train_epoch(run: WorkerRun, epoch: int) -> dict:
    """One pass over this worker's train shard: the epoch's loss, train accuracy (summed over the
    workers), learning rate, throughput and unreadable videos."""
    cfg, model, aq_layers = run.cfg, run.model, run.aq_layers
    model.train()
    monitor = DataQualityMonitor(cfg.data.min_valid_fraction)
    train_acc = AccuracyCounter(run.num_classes)
    loss_sum, steps, clips_seen, start = 0.0, 0, 0, time.perf_counter()
    batches = run.source.batches(run.shards["train"], ClipMode.TRAIN, epoch)
    for clips, labels in clip_batches(batches, monitor, run.device):
        clips = clips[:, 0]  # one view in training
        with autocast(cfg, run.device):
            logits = model(clips)
            loss = F.cross_entropy(logits, labels)
            if aq_layers and cfg.aq.weight > 0:
                loss = loss + cfg.aq.weight * budget_loss(aq_layers, cfg.aq.budget)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        train_acc.update(logits, labels)
        loss_sum += loss.item()
        steps += 1
        clips_seen += len(labels)
        if run.rank == 0 and steps % cfg.log_every == 0:
            rate = clips_seen / (time.perf_counter() - start)
            print(f"[train] epoch {epoch + 1}/{cfg.optim.epochs} step {steps} loss {loss.item():.3f} "
                  f"{rate:.1f} clips/s (worker 0)", flush=True)
    epoch_time = time.perf_counter() - start
    train_acc.all_reduce()
    return {
        names.EPOCH: epoch + 1,
        names.TRAIN_LOSS: loss_sum / max(steps, 1),
        **train_acc.result(names.TRAIN),
        names.LR: run.optimizer.param_groups[0]["lr"],
        names.CLIPS_PER_S: clips_seen * run.world_size / max(epoch_time, 1e-9),
        names.BAD_VIDEOS: monitor.bad,
    }


def validate(run: WorkerRun, epoch: int, protocol: ClipMode = names.VAL_PROTOCOL,
             model: torch.nn.Module | None = None) -> AccuracyCounter:
    """`protocol` on this worker's val shard, with the training model or `model` (e.g. RS-AQ as served)."""
    return evaluate_shard(run.model if model is None else model, run.source, run.shards["val"], protocol, epoch,
                          run.num_classes, run.cfg, run.device)


def end_of_run_protocols(run: WorkerRun, epoch: int, val: AccuracyCounter) -> dict:
    """`<protocol>_*` of the protocols the clip source serves in the workers; the last epoch's
    validation already is the 1-clip protocol. The driver evaluates the others after the run. RS-AQ is
    evaluated as it is served, on a copy with its attention shifts hard-maxed to integer shifts, which the
    training-time soft attention does not compute exactly (so its last validation does not stand in)."""
    served = None
    if run.aq_layers:
        served = copy.deepcopy(run.bare)
        convert_attention_shifts(served)
    metrics = {}
    for protocol in run.source.worker_protocols():
        if served is None and protocol == names.VAL_PROTOCOL:
            counts = val
        else:
            counts = validate(run, epoch, protocol, served)
        metrics.update(counts.result(protocol))
        run.confusion[str(protocol)] = counts.confusion()  # to the checkpoint, not the report: a matrix
    return metrics


def aq_metrics(run: WorkerRun) -> dict:
    layers = run.aq_layers
    if not layers:
        return {}
    return {names.AQ_TEMPERATURE: float(layers[0].T), names.REALISED_BUDGET: realised_budget(layers)}


def checkpoint_and_report(run: WorkerRun, epoch: int, metrics: dict) -> None:
    """Rank 0 writes the checkpoint (weights, optimizer, config, classes, history, the end-of-run confusion
    matrices); every worker reports."""
    import ray.train

    run.history.append(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if run.rank == 0:
            cfg = run.cfg
            payload = model_payload(run.bare, cfg, optimizer=run.optimizer.state_dict(), epoch=epoch,
                                    config=cfg.model_dump(), classes=run.classes, history=run.history,
                                    confusion=run.confusion)
            torch.save(payload, os.path.join(tmp, CHECKPOINT_FILE))
            ckpt = ray.train.Checkpoint.from_directory(tmp)
            print(f"[train] epoch {epoch + 1}/{cfg.optim.epochs} loss {metrics[names.TRAIN_LOSS]:.3f} "
                  f"val top1 {metrics[names.VAL_TOP1]:.3f} {metrics[names.CLIPS_PER_S]:.1f} clips/s", flush=True)
        ray.train.report(metrics, checkpoint=ckpt)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()
