"""Builders, geometries and device parameters shared by the op tests."""
import pytest
import torch

from rubiks_service.ops import RubiksShift3d, has_kernel

CUDA = torch.cuda.is_available()
HAS_CUDA_KERNEL = CUDA and has_kernel(torch.device("cuda"))
HAS_CPU_KERNEL = has_kernel(torch.device("cpu"))

needs_cuda = pytest.mark.skipif(
    not HAS_CUDA_KERNEL,
    reason="needs a CUDA device" if not CUDA else "the extension was built without its CUDA kernels",
)
needs_extension = pytest.mark.skipif(not HAS_CPU_KERNEL, reason="compiled extension not built")


def cpu_and_cuda(*cuda_marks):
    """Values of a `device` parameter (as torchvision's test_ops.py): the cuda case
    is skipped without a GPU or without the extension's CUDA kernels."""
    return ("cpu", pytest.param("cuda", marks=(needs_cuda, *cuda_marks)))


# (shape (N, T, C, H, W), stride, padding) of the 3D op
GEOMETRIES = [
    ((2, 5, 4, 7, 9), (1, 1, 1), (0, 0, 0)),
    ((2, 8, 6, 8, 8), (1, 2, 2), (0, 0, 0)),
    ((1, 6, 3, 9, 7), (1, 2, 2), (0, 1, 1)),
    ((3, 4, 5, 6, 5), (2, 3, 1), (1, 0, 2)),
]
# ... and those that exercise how the CUDA kernels split the work into blocks
SPLIT_GEOMETRIES = GEOMETRIES + [
    ((3, 300, 2, 4, 4), (1, 1, 1), (0, 0, 0)),  # many small planes: several chunks per channel
    ((1, 3, 2, 100, 97), (2, 1, 2), (1, 1, 0)),  # planes cut into pieces (output side)
    ((1, 2, 2, 160, 161), (1, 1, 1), (0, 0, 0)),  # planes cut into 4 pieces
    ((1, 2, 1, 181, 181), (1, 2, 2), (0, 1, 1)),  # pieces on the input side only (grad_x)
    ((2, 1, 3, 1, 5), (1, 1, 1), (0, 0, 0)),  # size-1 axes
    ((2, 3, 2, 5, 1), (3, 3, 3), (2, 2, 2)),  # padding larger than the input
]

# Tolerances of a kernel against float64 on the same (rounded) inputs: float32 to
# 1e-5; float16 2e-3 and bfloat16 1.6e-2 relative, a few units of the last place of
# the stored result (the kernels accumulate in float32).
DTYPE_TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def off_integer_shift(rows: int, channels: int, *, dtype=torch.float64, device="cpu", span: int = 2):
    """Shifts in (-span, span) whose fractional parts stay in [0.1, 0.9] (away from the kinks)."""
    whole = torch.randint(-span, span, (rows, channels), dtype=dtype)
    frac = 0.1 + 0.8 * torch.rand(rows, channels, dtype=dtype)
    return (whole + frac).to(device)


def shift_by_indexing(x: torch.Tensor, shift: torch.Tensor, stride, padding) -> torch.Tensor:
    """The 3D op for integer shifts, written as plain indexing with zero fill (slow, obvious)."""
    n, t, c, h, w = x.shape
    sizes = [(size + 2 * p - 1) // s + 1 for size, s, p in zip((t, h, w), stride, padding)]
    out = torch.zeros(n, sizes[0], c, sizes[1], sizes[2], dtype=x.dtype)
    for ch in range(c):
        dt, dh, dw = (int(v) for v in shift[:, ch])
        for i in range(sizes[0]):
            ti = i * stride[0] - padding[0] + dt
            if not 0 <= ti < t:
                continue
            for j in range(sizes[1]):
                hj = j * stride[1] - padding[1] + dh
                if not 0 <= hj < h:
                    continue
                for k in range(sizes[2]):
                    wk = k * stride[2] - padding[2] + dw
                    if 0 <= wk < w:
                        out[:, i, ch, j, k] = x[:, ti, ch, hj, wk]
    return out


class ShiftConvBlock(torch.nn.Module):
    """shift -> 1x1 conv, the RubiksNet building pattern."""

    def __init__(self, c):
        super().__init__()
        self.shift = RubiksShift3d(c, stride=(1, 2, 2))
        self.conv = torch.nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.shift(x)
        n, t, c, h, w = y.shape
        return self.conv(y.reshape(n * t, c, h, w)).reshape(n, t, c, h, w)


def eager_and_compiled(model, x, autocast_dtype=None):
    """((out, parameter grads) eager, the same through torch.compile(fullgraph=True)),
    optionally under torch.autocast on x's device."""
    device_type = x.device.type

    def step(m):
        model.zero_grad()
        with torch.autocast(device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            out = m(x)
        out.float().square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    torch._dynamo.reset()
    eager = step(model)
    compiled = step(torch.compile(model, fullgraph=True))
    return eager, compiled
