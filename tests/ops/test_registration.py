"""torch.library registration: opcheck on every op, torch.compile(fullgraph=True)."""
import pytest
import torch
from torch.library import opcheck

from rubiks_service.ops import RubiksShift3d, has_kernel

from ._helpers import off_integer_shift

pytestmark = pytest.mark.skipif(not has_kernel(torch.device("cpu")), reason="compiled extension not built")

OPS = torch.ops.rubiks


def _forward_cases():
    for stride, padding in [([1, 1, 1], [0, 0, 0]), ([1, 2, 2], [0, 1, 1])]:
        for quantize in (False, True):
            x = torch.randn(2, 4, 3, 6, 5, dtype=torch.float64, requires_grad=True)
            shift = off_integer_shift(3, 3).requires_grad_()
            yield OPS.shift3d.default, (x, shift, stride, padding, quantize)
            x2 = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
            shift2 = off_integer_shift(2, 3).requires_grad_()
            yield OPS.shift2d.default, (x2, shift2, stride[1:], padding[1:], quantize)


@pytest.mark.parametrize("case", list(_forward_cases()), ids=lambda c: str(c[0]))
def test_opcheck_forward(case):
    op, args = case
    opcheck(op, args)


def check_backward_ops(device: str = "cpu") -> None:
    """opcheck on the four gradient ops (shared with the CUDA tests)."""
    x = torch.randn(2, 4, 3, 6, 5, dtype=torch.float64, device=device)
    shift = off_integer_shift(3, 3, device=device)
    grad = torch.randn(2, 4, 3, 3, 3, dtype=torch.float64, device=device)
    opcheck(OPS.shift3d_grad_input.default, (grad, shift, list(x.shape), [1, 2, 2], [0, 0, 0], False))
    opcheck(OPS.shift3d_grad_shift.default, (grad, x, shift, [1, 2, 2], [0, 0, 0]))
    x2, shift2, grad2 = x[:, 0], shift[1:], grad[:, 0]
    opcheck(OPS.shift2d_grad_input.default, (grad2, shift2, list(x2.shape), [2, 2], [0, 0], True))
    opcheck(OPS.shift2d_grad_shift.default, (grad2, x2, shift2, [2, 2], [0, 0]))


def test_opcheck_backward_ops():
    check_backward_ops("cpu")


class _Block(torch.nn.Module):
    """shift -> 1x1 conv, the RubiksNet building pattern."""

    def __init__(self, c):
        super().__init__()
        self.shift = RubiksShift3d(c, stride=(1, 2, 2))
        self.conv = torch.nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.shift(x)
        n, t, c, h, w = y.shape
        return self.conv(y.reshape(n * t, c, h, w)).reshape(n, t, c, h, w)


def test_torch_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    model = _Block(8)
    x = torch.randn(2, 4, 8, 10, 10)
    eager_out = model(x)
    eager_out.square().mean().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    out.square().mean().backward()
    torch.testing.assert_close(out, eager_out, atol=1e-5, rtol=1e-5)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5)
