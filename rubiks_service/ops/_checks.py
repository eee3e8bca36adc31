"""Argument checking and output shapes shared by the op, its fake kernel and the reference.

This is the one readable validator of the public API: bad input raises a Python
exception that names the problem (TypeError for a wrong type or dtype, ValueError
for a wrong shape or size) before any kernel runs. The C++ ops keep only cheap
guards against out-of-bounds indexing (ext/rubiks_shift_prologue.h).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

# dtypes each backend's kernels implement
SUPPORTED_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}

_LAYOUTS = {2: "(N, C, H, W)", 3: "(N, T, C, H, W)"}
_AXES = {2: "HW", 3: "THW"}


def as_tuple(value: int | Sequence[int], rank: int, name: str) -> tuple[int, ...]:
    """An int or a sequence of `rank` ints, as a tuple of ints."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or {rank} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * rank
    values = tuple(value)
    if len(values) != rank or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be an int or a sequence of {rank} ints, got {value!r}")
    return values


def output_size(n: int, stride: int, padding: int) -> int:
    """Output length along one axis: (n + 2p - 1) // s + 1."""
    return (n + 2 * padding - 1) // stride + 1


def output_shape(x_shape: Sequence[int], stride: Sequence[int], padding: Sequence[int]) -> list[int]:
    """Output shape for an input of layout (N, [T,] C, H, W)."""
    if len(stride) == 3:
        n, t, c, h, w = x_shape
        return [n, output_size(t, stride[0], padding[0]), c,
                output_size(h, stride[1], padding[1]), output_size(w, stride[2], padding[2])]
    n, c, h, w = x_shape
    return [n, c, output_size(h, stride[0], padding[0]), output_size(w, stride[1], padding[1])]


def _never(x: torch.Tensor, shift: torch.Tensor) -> bool:
    return False


def check_shift_args(
    x, shift, stride, padding, *, rank: int, op: str,
    casts_shift: Callable[[torch.Tensor, torch.Tensor], bool] = _never,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validate the arguments of the rank-`rank` shift op; returns (stride, padding) as tuples.

    `casts_shift(x, shift)` says whether the op will cast shift to x's dtype itself
    (the caller's dispatch policy); then differing dtypes are not an error."""
    layout = _LAYOUTS[rank]
    if not isinstance(x, torch.Tensor) or not isinstance(shift, torch.Tensor):
        raise TypeError(f"{op}: x and shift must be tensors, got {type(x).__name__} and {type(shift).__name__}")
    if x.dim() != rank + 2:
        raise ValueError(f"{op}: x must have layout {layout} ({rank + 2}-D), got shape {tuple(x.shape)}")
    channels = x.shape[-3]
    if tuple(shift.shape) != (rank, channels):
        raise ValueError(
            f"{op}: shift must have shape ({rank}, C) = ({rank}, {channels}) with rows {_AXES[rank]}, "
            f"got {tuple(shift.shape)}"
        )
    if x.dtype != shift.dtype and not casts_shift(x, shift):
        raise TypeError(f"{op}: dtype mismatch, x is {x.dtype} but shift is {shift.dtype}")
    if x.device != shift.device:
        raise ValueError(f"{op}: x is on {x.device} but shift is on {shift.device}")
    supported = SUPPORTED_DTYPES.get(x.device.type)
    if supported is not None and x.dtype not in supported:
        names = ", ".join(str(d).removeprefix("torch.") for d in supported)
        raise TypeError(f"{op}: unsupported dtype {x.dtype} on {x.device.type} (supported: {names})")
    stride_t = as_tuple(stride, rank, "stride")
    padding_t = as_tuple(padding, rank, "padding")
    if any(s < 1 for s in stride_t):
        raise ValueError(f"{op}: stride must be >= 1, got {stride_t}")
    if any(p < 0 for p in padding_t):
        raise ValueError(f"{op}: padding must be >= 0, got {padding_t}")
    out = output_shape(x.shape, stride_t, padding_t)
    spatial = out[1:2] + out[3:] if rank == 3 else out[2:]
    for axis, size, s, p in zip(_AXES[rank], spatial, stride_t, padding_t):
        if size <= 0:
            raise ValueError(
                f"{op}: empty output along {axis} (input {tuple(x.shape)}, stride {s}, padding {p}); "
                "each of T, H, W must be at least 1"
            )
    return stride_t, padding_t
