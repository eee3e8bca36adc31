"""Loads the compiled extension, registers the Python halves of its ops, and
holds the dispatch policy: which devices have kernels, when the op casts the
shift itself, and the fallback warning.

The extension defines the ops under `torch.ops.rubiks` (schemas and kernels in
ext/). When it cannot be imported (not built), the public functions fall back to
the pure-PyTorch reference and say so once, loudly.
"""
from __future__ import annotations

import warnings

import torch

try:
    from rubiks_service import _C  # noqa: F401  (importing registers torch.ops.rubiks.*)
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    _C = None
    IMPORT_ERROR: ImportError | None = exc
else:
    IMPORT_ERROR = None
    from . import _registration  # noqa: F401

_warned: set[str] = set()


# Which device types the compiled extension has kernels for, read once at import
# (a plain dict lookup later, which torch.compile traces as a constant). The 2D
# ops are composites of the 3D ones, so the 3D forward tells for all.
_KERNELS = {
    device_type: _C is not None and torch._C._dispatch_has_kernel_for_dispatch_key("rubiks::shift3d", key)
    for device_type, key in (("cpu", "CPU"), ("cuda", "CUDA"))
}


def has_block_kernel() -> bool:
    """True when the extension has the CPU kernel of rubiks::block_forward (a build before it has not)."""
    return _C is not None and hasattr(torch.ops.rubiks, "block_forward") and (
        torch._C._dispatch_has_kernel_for_dispatch_key("rubiks::block_forward", "CPU"))


def has_kernel(device: torch.device) -> bool:
    """True when the compiled extension has kernels for this device type."""
    return _KERNELS.get(device.type, False)


def autocast_casts_shift(x: torch.Tensor, shift: torch.Tensor) -> bool:
    """True when the compiled op will cast `shift` to x's dtype itself: under
    torch.autocast("cuda") its AutocastCUDA kernel (ext/cuda/rubiks_shift_cuda.cpp)
    runs the op in x's dtype, so a float32 shift parameter may meet bf16/fp16 features."""
    if x.device.type != "cuda" or not (x.dtype.is_floating_point and shift.dtype.is_floating_point):
        return False
    return has_kernel(x.device) and torch.is_autocast_enabled("cuda")


def warn_fallback(op: str, device: torch.device) -> None:
    """One warning per (op, device) that the slow reference is being used."""
    key = f"{op}:{device.type}"
    if key in _warned:
        return
    _warned.add(key)
    reason = f"the extension failed to import ({IMPORT_ERROR})" if _C is None else (
        f"it has no {device.type} kernel"
    )
    warnings.warn(
        f"rubiks_service: using the pure-PyTorch reference for {op} on {device.type} because {reason}; "
        "rebuild with `pip install --no-build-isolation -e .` for the compiled kernels",
        RuntimeWarning,
        stacklevel=3,
    )
