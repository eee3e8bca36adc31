"""Pure-PyTorch reference of the RubiksShift ops.

Used by the tests as an independent implementation, and as the fallback when the
compiled extension is unavailable. The interpolated shift is separable: along
each axis an output index reads two neighbouring input indices with weights
(1 - frac, frac) that are constant per channel, so the op is three 1-D
interpolations in a row, each a `gather` (whose autograd is the exact adjoint).
The shift gradient flows through frac = pos - floor(pos): at an integer shift it
is the one-sided derivative from above, like the compiled kernels.
"""
from __future__ import annotations

import torch

from ._checks import as_tuple, output_size


def _broadcastable(t: torch.Tensor, ndim: int, channel_dim: int, dim: int) -> torch.Tensor:
    """A per-(channel, position) table (C, m) viewed to broadcast against an ndim tensor."""
    if dim < channel_dim:
        t = t.t()
    shape = [1] * ndim
    shape[channel_dim], shape[dim] = t.shape if channel_dim < dim else t.shape[::-1]
    return t.reshape(shape)


def _gather_axis(x: torch.Tensor, dim: int, channel_dim: int, index: torch.Tensor) -> torch.Tensor:
    """x gathered along `dim` with per-channel indices `index` (C, m); out-of-range reads 0."""
    n = x.shape[dim]
    valid = (index >= 0) & (index < n)
    shape = list(x.shape)
    shape[dim] = index.shape[1]
    safe = _broadcastable(index.clamp(0, max(n - 1, 0)), x.dim(), channel_dim, dim)
    gathered = torch.gather(x, dim, safe.expand(shape))
    return gathered * _broadcastable(valid, x.dim(), channel_dim, dim).to(x.dtype)


def _shift_axis(x, dim, channel_dim, shift, stride, padding, quantize):
    """1-D shift of `x` along `dim` by the per-channel `shift` (C,)."""
    m = output_size(x.shape[dim], stride, padding)
    base = torch.arange(m, device=x.device) * stride - padding  # (m,)
    if quantize:
        rounded = torch.floor(shift.detach() + 0.5).long()
        return _gather_axis(x, dim, channel_dim, base[None, :] + rounded[:, None])
    pos = base[None, :].to(shift.dtype) + shift[:, None]  # (C, m)
    lower = torch.floor(pos.detach())
    frac = _broadcastable(pos - lower, x.dim(), channel_dim, dim)
    lower = lower.long()
    return (1 - frac) * _gather_axis(x, dim, channel_dim, lower) + frac * _gather_axis(x, dim, channel_dim, lower + 1)


def _shift(x, shift, stride, padding, quantize, dims, channel_dim):
    stride = as_tuple(stride, len(dims), "stride")
    padding = as_tuple(padding, len(dims), "padding")
    def run(inp, q):
        out = inp
        for row, dim in enumerate(dims):
            out = _shift_axis(out, dim, channel_dim, shift[row], stride[row], padding[row], q)
        return out

    if not quantize:
        return run(x, False)
    # RS-Q: the forward gathers at the rounded shift; the shift receives the
    # interpolated gradient (straight-through), the input the exact one.
    continuous = run(x.detach(), False)
    return run(x, True) + (continuous - continuous.detach())


def shift3d(x, shift, stride=(1, 1, 1), padding=(0, 0, 0), quantize=False):
    """Reference of `rubiks_shift3d`: x (N, T, C, H, W), shift (3, C) rows [T, H, W]."""
    return _shift(x, shift, stride, padding, quantize, dims=(1, 3, 4), channel_dim=2)


def shift2d(x, shift, stride=(1, 1), padding=(0, 0), quantize=False):
    """Reference of `rubiks_shift2d`: x (N, C, H, W), shift (2, C) rows [H, W]."""
    return _shift(x, shift, stride, padding, quantize, dims=(2, 3), channel_dim=1)


def shift3d_grid_sample(x, shift, stride=(1, 1, 1), padding=(0, 0, 0)):
    """The same op written with `F.grid_sample` (trilinear, zeros padding, align_corners=True).

    An independent formulation for the tests and the baseline of the benchmarks:
    each channel becomes its own batch entry with its own sampling grid. Needs
    every input axis longer than 1 (align_corners normalises by n - 1).
    """
    stride = as_tuple(stride, 3, "stride")
    padding = as_tuple(padding, 3, "padding")
    n, t, c, h, w = x.shape
    axes = []
    for row, size in enumerate((t, h, w)):
        m = output_size(size, stride[row], padding[row])
        pos = (torch.arange(m, device=x.device, dtype=x.dtype) * stride[row] - padding[row])[None, :] + shift[row][:, None]
        axes.append(pos * (2.0 / (size - 1)) - 1.0)  # (C, m) in grid_sample's [-1, 1]
    gt, gh, gw = axes
    c_, mt, mh, mw = c, gt.shape[1], gh.shape[1], gw.shape[1]
    grid = torch.stack(
        [  # grid_sample wants (x, y, z) = (W, H, T) coordinates
            gw[:, None, None, :].expand(c_, mt, mh, mw),
            gh[:, None, :, None].expand(c_, mt, mh, mw),
            gt[:, :, None, None].expand(c_, mt, mh, mw),
        ],
        dim=-1,
    )
    volumes = x.permute(0, 2, 1, 3, 4).reshape(n * c, 1, t, h, w)
    grid = grid.unsqueeze(0).expand(n, -1, -1, -1, -1, -1).reshape(n * c, mt, mh, mw, 3)
    out = torch.nn.functional.grid_sample(volumes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(n, c, mt, mh, mw).permute(0, 2, 1, 3, 4)
