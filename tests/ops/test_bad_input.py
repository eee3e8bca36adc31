"""Bad input gets a clear Python exception naming the problem, never a crash."""
import pytest
import torch

from rubiks_service.ops import rubiks_shift2d, rubiks_shift3d

from ._helpers import cpu_and_cuda, needs_cuda, needs_extension


@pytest.mark.parametrize(
    "x,shift,kwargs,exc,match",
    [
        (torch.randn(2, 3, 4, 5), torch.rand(3, 3), {}, ValueError, r"\(N, T, C, H, W\)"),
        (torch.randn(2, 3, 4, 5, 5), torch.rand(3, 5), {}, ValueError, r"shift must have shape \(3, C\) = \(3, 4\)"),
        (torch.randn(2, 3, 4, 5, 5), torch.rand(2, 4), {}, ValueError, "shift must have shape"),
        (torch.randn(2, 3, 4, 5, 5), torch.rand(3, 4, dtype=torch.float64), {}, TypeError, "dtype mismatch"),
        (torch.randn(2, 3, 4, 5, 5).half(), torch.rand(3, 4).half(), {}, TypeError, "unsupported dtype"),
        (torch.ones(2, 3, 4, 5, 5, dtype=torch.int64), torch.ones(3, 4, dtype=torch.int64), {}, TypeError, "unsupported dtype"),
        (torch.randn(2, 3, 4, 1, 5), torch.rand(3, 4), {"stride": (1, 1, 1), "padding": (0, 0, 0)}, None, None),
        (torch.randn(2, 0, 4, 5, 5), torch.rand(3, 4), {}, ValueError, "empty output along T"),
        (torch.randn(2, 3, 4, 5, 5), torch.rand(3, 4), {"stride": 0}, ValueError, "stride must be >= 1"),
        (torch.randn(2, 3, 4, 5, 5), torch.rand(3, 4), {"padding": -1}, ValueError, "padding must be >= 0"),
        (torch.randn(2, 3, 4, 5, 5), torch.rand(3, 4), {"stride": (1, 2)}, TypeError, "3 ints"),
        ([[1.0]], torch.rand(3, 4), {}, TypeError, "must be tensors"),
    ],
)
def test_3d_bad_input(x, shift, kwargs, exc, match):
    if exc is None:  # a size-1 axis is valid, not an error
        assert rubiks_shift3d(x, shift, **kwargs).shape == x.shape
        return
    with pytest.raises(exc, match=match):
        rubiks_shift3d(x, shift, **kwargs)


def test_2d_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        rubiks_shift2d(torch.randn(2, 3, 4, 5, 6), torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"\(2, C\)"):
        rubiks_shift2d(torch.randn(2, 3, 4, 5), torch.rand(3, 3))


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_dtype_mismatch_outside_autocast(device):
    x = torch.randn(1, 2, 3, 4, 4, device=device)
    with pytest.raises(TypeError, match="dtype mismatch"):
        rubiks_shift3d(x, torch.rand(3, 3, device=device, dtype=torch.float64))


@needs_cuda
def test_tensors_on_two_devices():
    with pytest.raises(ValueError, match="is on"):
        rubiks_shift3d(torch.randn(1, 2, 3, 4, 4, device="cuda"), torch.rand(3, 3))  # shift on the CPU


@needs_extension
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_raw_ops_reject_bad_input_without_crashing(device):
    """Calling torch.ops.rubiks.* directly bypasses the Python checks; the C++ guards still hold."""
    ops = torch.ops.rubiks

    def randn(*size):
        return torch.randn(*size, device=device)

    def rand(*size):
        return torch.rand(*size, device=device)

    with pytest.raises(RuntimeError, match=r"shift must have shape \(3, C\)"):
        ops.shift3d(randn(1, 2, 3, 4, 4), rand(3, 5), [1, 1, 1], [0, 0, 0], False)
    with pytest.raises(RuntimeError, match="dtype mismatch"):
        ops.shift3d(randn(1, 2, 3, 4, 4), rand(3, 3).double(), [1, 1, 1], [0, 0, 0], False)
    with pytest.raises(RuntimeError, match="empty output"):
        ops.shift3d(randn(1, 2, 3, 4, 4), rand(3, 3), [1, 1, 1], [0, 0, 0], False)[:0]
        ops.shift3d(randn(1, 2, 3, 0, 4), rand(3, 3), [1, 1, 1], [0, 0, 0], False)
    with pytest.raises(RuntimeError, match="grad_out has shape"):
        ops.shift3d_grad_shift(randn(1, 2, 3, 4, 5), randn(1, 2, 3, 4, 4), rand(3, 3), [1, 1, 1], [0, 0, 0])
    with pytest.raises(RuntimeError, match="stride must be >= 1"):
        ops.shift2d(randn(1, 3, 4, 4), rand(2, 3), [0, 1], [0, 0], False)
