"""Start a run from other weights (`model.init_from`), which is not a resume: the optimizer, the
learning-rate schedule and the epoch start fresh.

    a checkpoint file (a training checkpoint, the MLflow model's, or the reference release's format)
      -> read with the safe reader (`read_checkpoint_file`: tensors and plain data only)
      -> its architecture must be the config's model (a 2D checkpoint of the tier is inflated:
         `models.inflate`, temporal rows by `model.inflate_temporal`; an RS checkpoint starting an
         RS-AQ model has its 1x1s and spatial shifts moved to RS-AQ's layout: `models.aq_from_rs`)
      -> tensors that match a model key in name and shape load; the classifier head is left at its
         fresh initialisation when the classes differ; what loaded, what was skipped (and why) and what
         kept its fresh initialisation is the `InitReport`
      -> `model.freeze_stages`: the stem and the first residual stages keep their loaded weights and
         BN statistics

runs:/ and models:/ URIs are resolved by the tracking layer on the driver, before any worker starts
(tracking/init_source.py); the driver reads the file and the workers get its contents (no disk shared
by the nodes needed) and load them with the same function.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from rubiks_service.models import TSMResNet, model_entry
from rubiks_service.models.aq_from_rs import aq_state_from_rs, is_aq_state, is_rs_state
from rubiks_service.models.checkpoint import CheckpointError, read_checkpoint_file
from rubiks_service.models.inflate import inflate_state_dict, is_2d_state
from rubiks_service.models.rubiksnet import RubiksNet

# a model's stages in order, as parameter-name prefixes: the stem, then the residual layers
STAGES = {
    "rubiksnet": (("backbone.conv1.",), *((f"backbone.layer{i}.",) for i in range(5))),
    "tsm": (("conv1.", "bn1."), *((f"layer{i}.",) for i in range(1, 5))),
}


class InitFromError(ValueError):
    """`model.init_from` that cannot start this run (one line naming the problem)."""


@dataclass
class InitReport:
    source: str  # what the config named (a path or an MLflow URI)
    architecture: str | None  # the checkpoint's model name, when it records one
    loaded: list[str] = field(default_factory=list)  # model keys set from the checkpoint
    inflated: list[str] = field(default_factory=list)  # of those, 3D shifts inflated from 2D ones
    from_rs: list[str] = field(default_factory=list)  # of those, RS weights moved to RS-AQ's layout
    skipped: dict[str, str] = field(default_factory=dict)  # checkpoint key -> why it was not used
    reinitialised: list[str] = field(default_factory=list)  # model keys that keep their fresh init
    frozen: list[str] = field(default_factory=list)  # parameters that do not train
    version: str | None = None  # the registered model version / run it came from (MLflow URIs)

    def line(self) -> str:
        """One line for the console."""
        inflated = f" ({len(self.inflated)} 2D shifts inflated)" if self.inflated else ""
        inflated += f" ({len(self.from_rs)} RS tensors in RS-AQ's layout)" if self.from_rs else ""
        skipped = ", ".join(f"{k}: {v}" for k, v in list(self.skipped.items())[:3])
        skipped += ", ..." if len(self.skipped) > 3 else ""
        version = f" [{self.version}]" if self.version else ""
        frozen = f"; {len(self.frozen)} parameters frozen" if self.frozen else ""
        return (f"init_from {self.source}{version}: loaded {len(self.loaded)} tensors{inflated}, "
                f"skipped {len(self.skipped)}{f' ({skipped})' if skipped else ''}, "
                f"re-initialised {len(self.reinitialised)}"
                f"{f' ({_short(self.reinitialised)})' if self.reinitialised else ''}{frozen}")

    def counts(self) -> dict[str, int]:
        """The numbers a run logs as params."""
        return {"init_from.loaded": len(self.loaded), "init_from.inflated": len(self.inflated),
                "init_from.skipped": len(self.skipped), "init_from.reinitialised": len(self.reinitialised),
                "init_from.frozen": len(self.frozen), "init_from.from_rs": len(self.from_rs)}


def _short(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def checkpoint_contents(state, source: str) -> tuple[str | None, dict[str, torch.Tensor], list[str] | None]:
    """(architecture, weights, class names) of a checkpoint in any of the formats this service writes or
    reads: a training checkpoint (config + classes), the release's (tier + model) or a TSM one (arch)."""
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        found = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise InitFromError(f"init_from {source}: not a model checkpoint (no 'model' weights; found {found})")
    weights = {k.removeprefix("module."): v for k, v in state["model"].items() if isinstance(v, torch.Tensor)}
    config = state.get("config")
    arch = None
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        arch = config["model"].get("name")
    elif "tier" in state:
        arch = f"rubiksnet-{state['tier']}"
    elif "arch" in state:
        arch = state["arch"]
    classes = state.get("classes")  # a release checkpoint has only the count: its head is compared by shape
    return (str(arch).lower() if arch else None), weights, ([str(c) for c in classes] if classes else None)


def head_prefix(model: nn.Module) -> str:
    """The classifier head's parameter prefix: the last linear layer (`new_fc.`, `fc.`)."""
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return f"{last[-1]}." if last else ""


def family_of(model: nn.Module) -> str:
    return "rubiksnet" if isinstance(model, RubiksNet) else "tsm" if isinstance(model, TSMResNet) else "other"


def read_init_checkpoint(path: str, source: str | None = None):
    """The contents of the checkpoint file at `path` (tensors and plain data only), or `InitFromError`."""
    if not os.path.exists(path):
        raise InitFromError(f"init_from: checkpoint not found: {source or path}")
    try:
        return read_checkpoint_file(path)
    except CheckpointError as exc:
        raise InitFromError(f"init_from: {exc}") from None


def load_init_weights(model: nn.Module, state, *, model_name: str, classes: list[str] | None = None,
                      temporal_init: str = "tsm", source: str = "checkpoint") -> InitReport:
    """Load what fits of a checkpoint's contents (`read_init_checkpoint`) into `model` (in place); raise
    `InitFromError` when it is another architecture or has nothing in common with the model."""
    arch, weights, ckpt_classes = checkpoint_contents(state, source)
    wanted = _canonical(model_name)
    if arch is not None and _canonical(arch) != wanted:
        raise InitFromError(f"init_from {source}: a {arch} checkpoint cannot start a {wanted} model "
                            f"(architectures differ; model.name must be {arch})")
    report = InitReport(source, arch)
    own = model.state_dict()
    if is_2d_state(weights) and any(k.endswith(".as3.rubiks3d.shift") for k in own):
        weights, report.inflated = inflate_state_dict(weights, temporal_init)
    if is_rs_state(weights) and is_aq_state(own):  # RS -> RS-AQ
        weights, report.from_rs = aq_state_from_rs(weights)
    head = head_prefix(model)
    new_classes = classes is not None and ckpt_classes is not None and list(ckpt_classes) != list(classes)
    take = {}
    for key, value in weights.items():
        if key not in own:
            report.skipped[key] = "not in model"
        elif tuple(value.shape) != tuple(own[key].shape):
            report.skipped[key] = f"shape {list(value.shape)} vs {list(own[key].shape)}"
        elif head and key.startswith(head) and new_classes:
            report.skipped[key] = "classifier head: other classes"
        else:
            take[key] = value
    if not any(not (head and k.startswith(head)) for k in take):
        raise InitFromError(f"init_from {source}: nothing in common with a {wanted} model "
                            f"(no tensor matches in name and shape)")
    model.load_state_dict(take, strict=False)
    report.loaded = list(take)
    report.inflated = [k for k in report.inflated if k in take]
    report.from_rs = [k for k in report.from_rs if k in take]
    report.reinitialised = [k for k in own if k not in take]
    return report


def _canonical(name: str) -> str:
    """A model name as MODELS spells it (a bare tier names its rubiksnet-*)."""
    try:
        model_entry(name)
    except ValueError:
        return name.lower()
    key = name.lower()
    return key if key.startswith(("rubiksnet-", "tsm-")) else f"rubiksnet-{key}"


def freeze_stages(model: nn.Module, count: int) -> list[str]:
    """Stop the first `count` stages (stem, then residual layers) from training: parameters frozen and
    their BN layers kept in eval mode (their loaded statistics stay). Returns the frozen parameter names."""
    if count <= 0:
        return []
    stages = STAGES.get(family_of(model))
    if stages is None or count > len(stages):
        raise InitFromError(f"model.freeze_stages: {count} is more than the model's {len(stages or ())} stages")
    prefixes = tuple(p for stage in stages[:count] for p in stage)
    frozen = []
    for name, param in model.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    for name, module in model.named_modules():
        if f"{name}.".startswith(prefixes) and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_keep_eval)
    return frozen


def _keep_eval(module: nn.Module, _inputs) -> None:
    # model.train() at every epoch would switch a frozen BN back to updating its statistics
    module.training = False
