"""Public functional API of the RubiksShift ops."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from . import reference
from ._checks import check_shift_args
from ._extension import autocast_casts_shift, has_kernel, warn_fallback


def rubiks_shift3d(
    x: torch.Tensor,
    shift: torch.Tensor,
    stride: int | Sequence[int] = (1, 1, 1),
    padding: int | Sequence[int] = (0, 0, 0),
    quantize: bool = False,
) -> torch.Tensor:
    """Learnable 3D spatiotemporal shift (RubiksShift, RS / RS-Q).

    Args:
        x: clip features of layout (N, T, C, H, W).
        shift: (3, C) per-channel shifts, rows [T, H, W]. A positive shift reads
            from the higher index: with shift[0, c] = +1, out[:, t, c] = x[:, t + 1, c].
        stride: output subsampling per axis; output size is (n + 2p - 1) // s + 1.
        padding: zero padding per axis (reads outside the input are 0 on every axis).
        quantize: RS-Q. The forward rounds each shift half-up and gathers; the
            shift still receives the interpolated gradient (straight-through).

    Returns (N, T', C, H', W'). Gradients for x and shift are exact (not
    normalised); at an integer shift the shift gradient is the one-sided
    derivative from above (the interpolation uses floor(pos) and floor(pos) + 1).
    """
    stride, padding = check_shift_args(
        x, shift, stride, padding, rank=3, op="rubiks_shift3d", casts_shift=autocast_casts_shift
    )
    if has_kernel(x.device):
        return torch.ops.rubiks.shift3d(x, shift, list(stride), list(padding), quantize)
    warn_fallback("shift3d", x.device)
    return reference.shift3d(x, shift, stride, padding, quantize)


def rubiks_shift2d(
    x: torch.Tensor,
    shift: torch.Tensor,
    stride: int | Sequence[int] = (1, 1),
    padding: int | Sequence[int] = (0, 0),
    quantize: bool = False,
) -> torch.Tensor:
    """Learnable 2D spatial shift: x (N, C, H, W), shift (2, C) rows [H, W]; same rules as 3D."""
    stride, padding = check_shift_args(
        x, shift, stride, padding, rank=2, op="rubiks_shift2d", casts_shift=autocast_casts_shift
    )
    if has_kernel(x.device):
        return torch.ops.rubiks.shift2d(x, shift, list(stride), list(padding), quantize)
    warn_fallback("shift2d", x.device)
    return reference.shift2d(x, shift, stride, padding, quantize)
