"""Attention-quantized temporal shift (RS-AQ, RubiksNet paper Sec. 3.1).

Each channel holds attention logits W[c, :] over the integer temporal shifts
{-k, ..., k} (k = 1 in the paper). During training the output is the
attention-weighted sum of the shifted clips,

    a[c] = softmax(W[c] / (T * std(W[c])))       (Eq. 7; T is the temperature; std over the 2k+1
                                                  candidates of channel c, as the official release)
    out[:, t, c] = sum_j a[c, j] * x[:, t + shift_j, c]   (zero outside the clip)

with T annealed towards 0 so the attention becomes one-hot. After training
`convert_()` keeps the arg-max shift per channel: inference is then a pure
gather with no interpolation and no attention weights.

The budget loss (Eq. 8) pushes the mean fraction of attention on non-zero
shifts (averaged over channels, then over layers) towards a budget B.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .functional import rubiks_shift3d


class TemporalAttentionShift(nn.Module):
    """Attention over integer temporal shifts of (N, T, C, H, W) clips.

    State-dict keys match the reference release's AQ checkpoints: `weight`
    (C, 2k+1) and the scalar temperature buffer `T`.
    """

    def __init__(self, num_channels: int, max_shift: int = 1, temperature: float = 2.0) -> None:
        super().__init__()
        if max_shift < 1:
            raise ValueError(f"max_shift must be >= 1, got {max_shift}")
        self.num_channels = num_channels
        self.max_shift = max_shift
        # U(0, 1) logits, standardised per channel in `attention()` (the official release's init and
        # form): every channel starts with attention spread over its candidates, so the loss can choose
        self.weight = nn.Parameter(torch.rand(num_channels, 2 * max_shift + 1))
        self.register_buffer("T", torch.tensor(float(temperature)))
        # after convert_(): the integer temporal shift per channel (a buffer, not a parameter)
        self.register_buffer("hard_shift", None)

    @property
    def shifts(self) -> torch.Tensor:
        """The candidate shifts, in the order of the attention columns."""
        return torch.arange(-self.max_shift, self.max_shift + 1, device=self.weight.device)

    @property
    def converted(self) -> bool:
        return self.hard_shift is not None

    def attention(self) -> torch.Tensor:
        """(C, 2k+1) attention over the candidate shifts (Eq. 7). Each channel's logits are divided by
        their own standard deviation: with one std over the whole layer (the earlier form), the U(1, 1.05)
        init made every channel's softmax sharp from the first step and the layer's scale drifted with
        every update, which left RS-AQ far behind RS (see the README's RS-AQ section)."""
        scale = (self.weight.std(dim=1, keepdim=True) + 1e-6) * self.T.clamp_min(1e-8)
        return torch.softmax(self.weight / scale, dim=1)

    def nonzero_fraction(self) -> torch.Tensor:
        """Mean attention on non-zero shifts over channels (the per-layer term of Eq. 8)."""
        if self.converted:
            return (self.hard_shift != 0).float().mean()
        return 1.0 - self.attention()[:, self.max_shift].mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.num_channels:
            raise ValueError(
                f"TemporalAttentionShift expects (N, T, {self.num_channels}, H, W), got {tuple(x.shape)}"
            )
        if self.converted:
            return rubiks_shift3d(x, self._hard_shift_3d(x.dtype), quantize=True)
        attn = self.attention().to(x.dtype)  # (C, 2k+1)
        out = None
        for j, s in enumerate(range(-self.max_shift, self.max_shift + 1)):
            shifted = _shift_time(x, s)
            term = shifted * attn[:, j].view(1, 1, -1, 1, 1)
            out = term if out is None else out + term
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a converted checkpoint carries `hard_shift`: make room so a strict load restores it
        key = prefix + "hard_shift"
        if key in state_dict and self.hard_shift is None:
            self.hard_shift = torch.empty_like(state_dict[key])
            self.weight.requires_grad_(False)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _hard_shift_3d(self, dtype: torch.dtype) -> torch.Tensor:
        zeros = torch.zeros_like(self.hard_shift, dtype=dtype)
        return torch.stack([self.hard_shift.to(dtype), zeros, zeros])

    @torch.no_grad()
    def convert_(self) -> "TemporalAttentionShift":
        """Hard-max conversion: keep the arg-max shift per channel; attention no longer used."""
        self.hard_shift = self.shifts[self.attention().argmax(dim=1)].clone()
        self.weight.requires_grad_(False)
        return self

    def extra_repr(self) -> str:
        state = "converted" if self.converted else f"T={float(self.T):.4g}"
        return f"{self.num_channels}, max_shift={self.max_shift}, {state}"


def _shift_time(x: torch.Tensor, s: int) -> torch.Tensor:
    """out[:, t] = x[:, t + s], zero outside the clip."""
    if s == 0:
        return x
    t = x.shape[1]
    if abs(s) >= t:
        return torch.zeros_like(x)
    pad = torch.zeros_like(x[:, : abs(s)])
    return torch.cat([x[:, s:], pad], dim=1) if s > 0 else torch.cat([pad, x[:, : t + s]], dim=1)


def attention_shift_layers(model: nn.Module) -> list[TemporalAttentionShift]:
    return [m for m in model.modules() if isinstance(m, TemporalAttentionShift)]


def convert_attention_shifts(model: nn.Module) -> list[TemporalAttentionShift]:
    """Hard-max every attention shift of `model` in place (the form that is served: integer temporal
    shifts); returns the layers. Layers already converted are left as they are."""
    layers = attention_shift_layers(model)
    for layer in layers:
        if not layer.converted:
            layer.convert_()
    return layers


def budget_loss(layers: Iterable[TemporalAttentionShift], budget: float) -> torch.Tensor:
    """Eq. 8: | mean over layers of the non-zero-shift attention fraction - B |."""
    fractions = [layer.nonzero_fraction() for layer in layers]
    if not fractions:
        raise ValueError("budget_loss: the model has no attention-quantized shift layers")
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"shift budget B must be in [0, 1], got {budget}")
    return (torch.stack(fractions).mean() - budget).abs()


def realised_budget(layers: Iterable[TemporalAttentionShift]) -> float:
    """The fraction of channels (mean over layers) that shift in time after hard-max."""
    fractions = []
    for layer in layers:
        with torch.no_grad():
            hard = layer.hard_shift if layer.converted else layer.shifts[layer.attention().argmax(dim=1)]
        fractions.append((hard != 0).float().mean().item())
    return sum(fractions) / len(fractions) if fractions else 0.0


def exponential_temperature(epoch: float, total_epochs: float, start: float = 2.0, end: float = 1e-3) -> float:
    """Exponential annealing from `start` at epoch 0 to `end` at `total_epochs` (then held)."""
    if total_epochs <= 0:
        return end
    progress = min(max(epoch / total_epochs, 0.0), 1.0)
    return start * math.exp(progress * math.log(end / start))


def set_temperature(model: nn.Module, temperature: float) -> None:
    for layer in attention_shift_layers(model):
        layer.T.fill_(temperature)
