"""torch.library registration on every device: opcheck on every op, torch.compile(fullgraph=True)."""
import pytest
import torch
from torch.library import opcheck

from ._helpers import ShiftConvBlock, cpu_and_cuda, eager_and_compiled, needs_extension, off_integer_shift

pytestmark = needs_extension

OPS = torch.ops.rubiks
# dtypes opcheck runs the forward ops in: float64, and on the GPU a half type too
OPCHECK_DTYPES = {"cpu": (torch.float64,), "cuda": (torch.float64, torch.bfloat16)}


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("rank", [3, 2])
@pytest.mark.parametrize("stride,padding", [([1, 1, 1], [0, 0, 0]), ([1, 2, 2], [0, 1, 1])])
@pytest.mark.parametrize("quantize", [False, True])
def test_opcheck_forward(quantize, stride, padding, rank, device):
    op = OPS.shift3d.default if rank == 3 else OPS.shift2d.default
    shape = (2, 4, 3, 6, 5) if rank == 3 else (2, 3, 6, 5)
    stride, padding = stride[3 - rank :], padding[3 - rank :]
    for dtype in OPCHECK_DTYPES[device]:
        x = torch.randn(shape, dtype=dtype, device=device, requires_grad=True)
        shift = off_integer_shift(rank, 3, device=device).to(dtype).requires_grad_()
        opcheck(op, (x, shift, stride, padding, quantize))


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_opcheck_backward_ops(device):
    x = torch.randn(2, 4, 3, 6, 5, dtype=torch.float64, device=device)
    shift = off_integer_shift(3, 3, device=device)
    grad = torch.randn(2, 4, 3, 3, 3, dtype=torch.float64, device=device)
    opcheck(OPS.shift3d_grad_input.default, (grad, shift, list(x.shape), [1, 2, 2], [0, 0, 0], False))
    opcheck(OPS.shift3d_grad_shift.default, (grad, x, shift, [1, 2, 2], [0, 0, 0]))
    x2, shift2, grad2 = x[:, 0], shift[1:], grad[:, 0]
    opcheck(OPS.shift2d_grad_input.default, (grad2, shift2, list(x2.shape), [2, 2], [0, 0], True))
    opcheck(OPS.shift2d_grad_shift.default, (grad2, x2, shift2, [2, 2], [0, 0]))


@pytest.mark.parametrize("device", cpu_and_cuda(pytest.mark.slow))
def test_torch_compile_fullgraph_matches_eager(device, no_tf32):
    model = ShiftConvBlock(8).to(device)
    x = torch.randn(2, 4, 8, 10, 10, device=device)
    (out_e, grads_e), (out_c, grads_c) = eager_and_compiled(model, x)
    torch.testing.assert_close(out_c, out_e, atol=1e-5, rtol=1e-5)
    for g_c, g_e in zip(grads_c, grads_e):
        torch.testing.assert_close(g_c, g_e, atol=1e-5, rtol=1e-5)
