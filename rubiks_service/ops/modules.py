"""nn.Module wrappers of the shift ops: parameters, initialisation, gradient normalisation."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import as_tuple
from .functional import rubiks_shift2d, rubiks_shift3d
from .grad_norm import GRAD_NORM_FORMS, resolve_temporal_factor, with_normalized_grad

SHIFT_INITS = ("uniform", "tsm", "zeros", "grid", "tsm-grid")


def init_shift_uniform_(shift: torch.Tensor, bound: float = 1.0) -> torch.Tensor:
    """U(-bound, bound) on every row (the release's default)."""
    with torch.no_grad():
        return shift.uniform_(-bound, bound)


def init_shift_tsm_(shift: torch.Tensor, fold_div: int = 8, noise: float = 1e-3) -> torch.Tensor:
    """TSM-like start: the first C/fold_div channels shift +1 in time, the next C/fold_div -1.

    Every other entry (the rest of the temporal row, and the spatial rows) is
    U(-noise, noise): near zero, but off the integer where the gradient is one-sided.
    """
    with torch.no_grad():
        shift.uniform_(-noise, noise)
        fold = shift.shape[1] // fold_div
        shift[0, :fold] = 1.0
        shift[0, fold : 2 * fold] = -1.0
    return shift


def init_shift_grid_(shift: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """ShiftNet-style spatial grid on the last two rows [H, W]: channel groups take the
    k*k integer offsets of a k x k kernel in turn (leftover channels shift 0)."""
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=shift.dtype)
    dh = offsets.repeat_interleave(kernel_size)
    dw = offsets.repeat(kernel_size)
    channels = shift.shape[1]
    group = channels // kernel_size**2
    with torch.no_grad():
        shift[-2:].zero_()
        if group:
            shift[-2, : group * kernel_size**2] = dh.repeat_interleave(group)
            shift[-1, : group * kernel_size**2] = dw.repeat_interleave(group)
    return shift


def _init(shift: torch.Tensor, init: str) -> None:
    if init == "uniform":
        init_shift_uniform_(shift)
    elif init == "tsm":
        if shift.shape[0] != 3:
            raise ValueError("the 'tsm' init needs a temporal row (3D shift)")
        init_shift_tsm_(shift)
    elif init == "zeros":
        with torch.no_grad():
            shift.zero_()
    elif init == "grid":
        with torch.no_grad():
            shift.zero_()
        init_shift_grid_(shift)
    elif init == "tsm-grid":  # the paper's fixed-shift ablation (Table 4): TSM in time, ShiftNet in space
        if shift.shape[0] != 3:
            raise ValueError("the 'tsm-grid' init needs a temporal row (3D shift)")
        with torch.no_grad():
            shift.zero_()
            fold = shift.shape[1] // 8
            shift[0, :fold], shift[0, fold : 2 * fold] = 1.0, -1.0
        init_shift_grid_(shift)
    else:
        raise ValueError(f"unknown shift init {init!r}; choose one of {SHIFT_INITS}")


class _RubiksShiftNd(nn.Module):
    rank: int

    def __init__(
        self,
        num_channels: int,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        *,
        quantize: bool = False,
        normalize_grad: bool = True,
        temporal_factor: float | str = 1.0,
        grad_norm_form: str = "release",
        init: str = "uniform",
        learnable: bool = True,
    ) -> None:
        super().__init__()
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        self.num_channels = num_channels
        self.stride = as_tuple(stride, self.rank, "stride")
        self.padding = as_tuple(padding, self.rank, "padding")
        self.quantize = quantize
        self.normalize_grad = normalize_grad
        if temporal_factor != "auto":
            temporal_factor = float(temporal_factor)
        self.temporal_factor = temporal_factor  # a number, or "auto" = T / H of each input
        if grad_norm_form not in GRAD_NORM_FORMS:
            raise ValueError(f"unknown grad_norm_form {grad_norm_form!r}; choose one of {GRAD_NORM_FORMS}")
        self.grad_norm_form = grad_norm_form
        self.shift = nn.Parameter(torch.empty(self.rank, num_channels), requires_grad=learnable)
        _init(self.shift, init)

    def effective_shift(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """The shift as the op sees it (gradient-normalising wrapper when enabled); `x` (the
        input) resolves temporal_factor "auto" to its T / H."""
        if self.normalize_grad and self.shift.requires_grad:
            factor = self.temporal_factor
            if factor == "auto":
                factor = 1.0 if x is None or self.rank == 2 else resolve_temporal_factor(factor, x.shape[1], x.shape[3])
            return with_normalized_grad(self.shift, factor, self.grad_norm_form)
        return self.shift

    def extra_repr(self) -> str:
        return (
            f"{self.num_channels}, stride={self.stride}, padding={self.padding}, quantize={self.quantize}, "
            f"normalize_grad={self.normalize_grad}, temporal_factor={self.temporal_factor}, "
            f"grad_norm_form={self.grad_norm_form}"
        )


class RubiksShift3d(_RubiksShiftNd):
    """Learnable 3D shift of (N, T, C, H, W) clips; parameter `shift` (3, C) rows [T, H, W].

    `temporal_factor` is the paper's lambda for the scaled gradient normalisation
    (`normalize_grad`): a number, or "auto" (T / H of each input, the release's option); a negative
    value selects the temporal-only sign update. `grad_norm_form`: "release" (unit sphere, default)
    or "paper" (Eq. 10, ellipsoid with temporal semi-axis sqrt(lambda)); see `grad_norm`.
    """

    rank = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rubiks_shift3d(x, self.effective_shift(x), self.stride, self.padding, self.quantize)

    @classmethod
    def from_2d(cls, module: "RubiksShift2d", temporal_init: str = "zeros", **overrides) -> "RubiksShift3d":
        """Inflate a (pre-trained) 2D shift: spatial rows copied, temporal row freshly initialised.

        Spatial stride/padding carry over (temporal stride 1, padding 0) unless overridden.
        """
        kwargs = dict(
            stride=(1, *module.stride),
            padding=(0, *module.padding),
            quantize=module.quantize,
            normalize_grad=module.normalize_grad,
        )
        kwargs.update(overrides)
        inflated = cls(module.num_channels, init="zeros", **kwargs)
        temporal = torch.empty(3, module.num_channels)
        _init(temporal, temporal_init)
        with torch.no_grad():
            inflated.shift.copy_(torch.cat([temporal[:1], module.shift.detach().cpu()]))
        return inflated.to(module.shift.device, module.shift.dtype)


class RubiksShift2d(_RubiksShiftNd):
    """Learnable 2D shift of (N, C, H, W) images; parameter `shift` (2, C) rows [H, W]."""

    rank = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rubiks_shift2d(x, self.effective_shift(), self.stride, self.padding, self.quantize)
