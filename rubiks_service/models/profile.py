"""Parameters, multiply-accumulates and latency of a video model.

Convention (the paper's and TSM's): FLOPs are multiply-accumulates (MACs) for
one clip of `frames` frames at `size`^2, one view. Counted by forward hooks on a
real forward pass:

* conv / linear: one MAC per weight use (`out_elems * in_ch/groups * k*k`, `out * in`);
* batch norm: 2 per element (normalise, then scale and shift);
* interpolated shift (RS): 8 per output element (one per trilinear corner);
  quantized shift (RS-Q) and a converted AQ shift: 0 (a gather);
* AQ attention shift before conversion: 2k+1 per element;
* squeeze-excite gate: 1 per element (its FCs are linear layers above);
* TSM temporal shift, ReLU, pooling and additions: 0 (memory movement / comparisons).

With these, conv+FC MACs of RubiksNet tiny/small/medium/large are 3.695G /
6.506G / 10.926G / 15.347G and the totals land within 1% of the paper's 3.9G /
6.8G / 11.2G / 15.8G.

`params` counts every parameter; `inference_params` leaves out the AQ attention
weights, which hard-max conversion discards (how the release reports AQ models).

Latency (`measure_latency`, the one standard measurement): the model's fastest
exact form (`models.inference.fastest_form`), fp32 clips of `frames` x `size`^2 at batch `batch`
(default 1), `threads` intra-op threads (default 2, restored afterwards), under
torch.inference_mode: `warmup` untimed calls, then `repeats` timed calls; the
figure is the minimum (the least disturbed run on a shared machine), the median
is reported beside it. Building the fastest form keeps the process's freed memory in
its heap (`models.process_heap`), so no call faults its activations in afresh; the
record's `heap` says which setting was in effect.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rubiks_service.ops import RubiksShift2d, RubiksShift3d
from rubiks_service.ops.attention_shift import TemporalAttentionShift

from .inference import fastest_form
from .process_heap import heap_setting
from .rubiksnet import SqueezeExcite


@dataclass
class ModelProfile:
    model: str
    num_classes: int
    frames: int
    size: int
    params: int
    inference_params: int
    macs: int
    macs_by_kind: dict[str, int]
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    latency_ms: float | None = None
    device: str | None = None
    latency: dict | None = None  # measure_latency's record (setup, min, median)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_dict(self) -> dict:
        out = asdict(self)
        out["gmacs"] = round(self.gmacs, 4)
        return out


def _macs_of(module: nn.Module, out: torch.Tensor) -> tuple[str, int] | None:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return "conv", out.numel() * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return "linear", out.numel() * module.in_features
    if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        return "batchnorm", 2 * out.numel()
    if isinstance(module, RubiksShift3d | RubiksShift2d):
        return "shift", 0 if module.quantize else 8 * out.numel()
    if isinstance(module, TemporalAttentionShift):
        return "attention_shift", 0 if module.converted else (2 * module.max_shift + 1) * out.numel()
    if isinstance(module, SqueezeExcite):
        return "se_gate", out.numel()
    return None


def _stage(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "backbone" and len(parts) > 1:
        return "stem" if parts[1] == "conv1" else ("head" if parts[1] == "bn_last" else parts[1])
    if parts[0].startswith("layer"):
        return parts[0]
    return "stem" if parts[0] in ("conv1", "bn1") else "head"


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters kept for inference after AQ conversion)."""
    total = sum(p.numel() for p in model.parameters())
    attention = sum(m.weight.numel() for m in model.modules() if isinstance(m, TemporalAttentionShift))
    return total, total - attention


def profile_model(
    model: nn.Module,
    *,
    name: str = "model",
    frames: int = 8,
    size: int = 224,
    latency: bool = False,
    device: str | torch.device = "cpu",
    warmup: int = 2,
    repeats: int = 5,
) -> ModelProfile:
    """Count params and MACs for one clip (N=1); optionally time the inference form (measure_latency)."""
    device = torch.device(device)
    was_training = model.training
    model = model.to(device).eval()
    by_kind: dict[str, int] = defaultdict(int)
    by_stage: dict[str, dict[str, int]] = defaultdict(lambda: {"macs": 0, "params": 0})
    handles = []
    for mod_name, module in model.named_modules():
        def hook(mod, inputs, out, mod_name=mod_name):
            counted = _macs_of(mod, out)
            if counted:
                by_kind[counted[0]] += counted[1]
                by_stage[_stage(mod_name)]["macs"] += counted[1]
        handles.append(module.register_forward_hook(hook))
    clip = torch.randn(1, frames, 3, size, size, device=device)
    try:
        with torch.no_grad():
            model(clip)
    finally:
        for h in handles:
            h.remove()
    for p_name, p in model.named_parameters():
        by_stage[_stage(p_name)]["params"] += p.numel()
    params, inference_params = count_params(model)
    timing = measure_latency(model, frames, size, warmup=warmup, repeats=repeats, device=device) if latency else None
    model.train(was_training)
    num_classes = next((m.out_features for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), 0)
    return ModelProfile(
        model=name,
        num_classes=num_classes,
        frames=frames,
        size=size,
        params=params,
        inference_params=inference_params,
        macs=sum(by_kind.values()),
        macs_by_kind=dict(by_kind),
        stages={k: by_stage[k] for k in sorted(by_stage, key=_stage_order)},
        latency_ms=timing["latency_ms"] if timing else None,
        device=str(device) if latency else None,
        latency=timing,
    )


def _stage_order(stage: str) -> tuple[int, str]:
    return (0, "") if stage == "stem" else (2, "") if stage == "head" else (1, stage)


LATENCY_THREADS = 2  # the development machine's cores; fixed so figures compare across runs


def measure_latency(
    model: nn.Module,
    frames: int = 8,
    size: int = 224,
    *,
    batch: int = 1,
    threads: int = LATENCY_THREADS,
    warmup: int = 2,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    inference_form: bool = True,
) -> dict:
    """The standard latency of a video model (see the module docstring): milliseconds per call on
    `batch` clips. `model` is not modified (the inference form is a copy)."""
    if batch < 1 or threads < 1 or warmup < 0 or repeats < 1:
        raise ValueError(f"measure_latency: need batch, threads, repeats >= 1 and warmup >= 0, got "
                         f"batch={batch} threads={threads} warmup={warmup} repeats={repeats}")
    device = torch.device(device)
    timed = fastest_form(model) if inference_form else model
    timed = timed.to(device).eval()
    clip = torch.randn(batch, frames, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                timed(clip)
            sync()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                timed(clip)
                sync()
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    times.sort()
    return {"latency_ms": 1e3 * times[0], "median_ms": 1e3 * times[len(times) // 2], "batch": batch,
            "frames": frames, "size": size, "threads": threads, "warmup": warmup, "repeats": repeats,
            "device": str(device), "form": "fastest" if inference_form else "as given", "heap": heap_setting()}


def measure_latency_vs_reference(
    model: nn.Module,
    reference: nn.Module,
    frames: int = 8,
    size: int = 224,
    *,
    threads: int = LATENCY_THREADS,
    warmup: int = 2,
    rounds: int = 7,
) -> dict:
    """`model`'s standard latency (batch 1, inference form, fp32 CPU) timed interleaved with a fixed
    `reference` model: each round times the model once, then the reference once, so load that comes
    and goes hits both alike. The figures are the minima over the rounds; `ratio_to_reference` is
    model / reference (below 1: faster than the reference) and holds across machines and load far
    better than the milliseconds do. Neither model is modified."""
    if threads < 1 or warmup < 0 or rounds < 1:
        raise ValueError(f"measure_latency_vs_reference: need threads, rounds >= 1 and warmup >= 0, got "
                         f"threads={threads} warmup={warmup} rounds={rounds}")
    timed = {"model": fastest_form(model).eval(), "reference": fastest_form(reference).eval()}
    clip = torch.randn(1, frames, 3, size, size, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {key: [] for key in timed}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for key in timed:
                for _ in range(warmup):
                    timed[key](clip)
            for _ in range(rounds):
                for key, m in timed.items():
                    start = time.perf_counter()
                    m(clip)
                    times[key].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    best = {key: 1e3 * min(t) for key, t in times.items()}
    median = {key: 1e3 * sorted(t)[len(t) // 2] for key, t in times.items()}
    return {"latency_ms": best["model"], "median_ms": median["model"], "reference_ms": best["reference"],
            "ratio_to_reference": best["model"] / best["reference"], "batch": 1, "frames": frames, "size": size,
            "threads": threads, "warmup": warmup, "rounds": rounds, "device": "cpu", "form": "fastest",
            "method": "interleaved with the reference, minimum over rounds", "heap": heap_setting()}
