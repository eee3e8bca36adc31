"""Plots of learned shifts (the paper's Fig. 5 and Fig. 6), saved as PNG.

Fig. 5: per layer, the histogram of temporal shifts; Fig. 6: per layer, the
(T, H, W) shifts of every channel as a 3D scatter. matplotlib is imported
lazily so the models stay importable on a bare GPU box.
"""
from __future__ import annotations

import math
import os

import torch
from torch import nn

from rubiks_service.ops import RubiksShift2d, RubiksShift3d
from rubiks_service.ops.attention_shift import TemporalAttentionShift


def learned_shifts(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(layer name, (3, C) shifts [T, H, W]) per shift layer, in model order.

    For an RS-AQ block the temporal row is the attention arg-max (or the converted
    integer shift) of its attention shift, and H, W come from its 2D shift.
    """
    out = []
    pending_temporal = None
    for name, module in model.named_modules():
        if isinstance(module, RubiksShift3d):
            out.append((name, module.shift.detach().float().cpu()))
        elif isinstance(module, TemporalAttentionShift):
            with torch.no_grad():
                hard = module.hard_shift if module.converted else module.shifts[module.attention().argmax(dim=1)]
            pending_temporal = hard.float().cpu()
        elif isinstance(module, RubiksShift2d):
            spatial = module.shift.detach().float().cpu()
            temporal = pending_temporal
            if temporal is None or temporal.numel() != spatial.shape[1]:
                temporal = torch.zeros(spatial.shape[1])
            out.append((name, torch.cat([temporal[None], spatial])))
            pending_temporal = None
    return out


def _grid(n: int) -> tuple[int, int]:
    cols = min(6, max(1, n))
    return math.ceil(n / cols), cols


def plot_temporal_histograms(model: nn.Module, path: str | os.PathLike, bins: int = 41) -> str:
    """Fig. 5: per-layer histograms of the temporal shifts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = learned_shifts(model)
    if not layers:
        raise ValueError("the model has no shift layers to plot")
    rows, cols = _grid(len(layers))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), squeeze=False)
    for ax, (name, shift) in zip(axes.flat, layers):
        ax.hist(shift[0].numpy(), bins=bins, range=(-3, 3), color="tab:blue")
        ax.set_title(name.replace("backbone.", "").replace(".as3.rubiks3d", ""), fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle("Learned temporal shifts per layer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)


def plot_shift_scatter(model: nn.Module, path: str | os.PathLike, max_layers: int = 12) -> str:
    """Fig. 6: per-layer 3D scatter of the (T, H, W) shifts of every channel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = learned_shifts(model)
    if not layers:
        raise ValueError("the model has no shift layers to plot")
    if len(layers) > max_layers:  # evenly spaced layers, first and last included
        idx = sorted({round(i * (len(layers) - 1) / (max_layers - 1)) for i in range(max_layers)})
        layers = [layers[i] for i in idx]
    rows, cols = _grid(len(layers))
    fig = plt.figure(figsize=(3.0 * cols, 3.0 * rows))
    for i, (name, shift) in enumerate(layers, start=1):
        ax = fig.add_subplot(rows, cols, i, projection="3d")
        t, h, w = shift.numpy()
        ax.scatter(h, w, t, s=4, c=t, cmap="coolwarm")
        ax.set_xlabel("H", fontsize=6)
        ax.set_ylabel("W", fontsize=6)
        ax.set_zlabel("T", fontsize=6)
        ax.tick_params(labelsize=5)
        ax.set_title(name.replace("backbone.", "").replace(".as3.rubiks3d", ""), fontsize=7)
    fig.suptitle("Learned (T, H, W) shifts per layer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)
