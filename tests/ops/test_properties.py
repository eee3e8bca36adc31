"""Property tests: over random shapes, shifts, strides and paddings the compiled op, on
every device, agrees with the pure-PyTorch reference on the CPU in value and in both
gradients."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rubiks_service.ops import reference, rubiks_shift2d, rubiks_shift3d

from ._helpers import cpu_and_cuda

sizes = st.integers(1, 7)
strides = st.integers(1, 3)
paddings = st.integers(0, 2)
# multiples of 1/1024: exact in floating point, so index + shift rounds nowhere and
# the integer shifts among them (where the one-sided convention applies) agree exactly
shift_values = st.integers(-3584, 3584).map(lambda k: k / 1024)


@st.composite
def problems(draw, rank):
    n = draw(st.integers(0, 2))
    c = draw(st.integers(1, 4))
    spatial = [draw(sizes) for _ in range(rank)]
    stride = tuple(draw(strides) for _ in range(rank))
    padding = tuple(draw(paddings) for _ in range(rank))
    shift = draw(st.lists(shift_values, min_size=rank * c, max_size=rank * c))
    quantize = draw(st.booleans())
    shape = (n, spatial[0], c, *spatial[1:]) if rank == 3 else (n, c, *spatial)
    return shape, torch.tensor(shift, dtype=torch.float64).reshape(rank, c), stride, padding, quantize


def _check(op, ref, problem, seed, device):
    shape, shift, stride, padding, quantize = problem
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, dtype=torch.float64, generator=gen).requires_grad_()
    shift = shift.clone().requires_grad_()
    out = op(x.to(device), shift.to(device), stride, padding, quantize).cpu()  # grads reach the CPU leaves
    expected = ref(x, shift, stride, padding, quantize)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-12)
    grad = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    ours = torch.autograd.grad(out, (x, shift), grad, allow_unused=True)
    theirs = torch.autograd.grad(expected, (x, shift), grad, allow_unused=True)
    for a, b in zip(ours, theirs):
        if b is None:  # nothing reached it (empty batch)
            assert a is None or not a.any()
            continue
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("device", cpu_and_cuda())
@given(problems(3), st.integers(0, 2**31 - 1))
def test_shift3d_agrees_with_reference(device, problem, seed):
    _check(rubiks_shift3d, reference.shift3d, problem, seed, device)


@pytest.mark.parametrize("device", cpu_and_cuda())
@given(problems(2), st.integers(0, 2**31 - 1))
def test_shift2d_agrees_with_reference(device, problem, seed):
    _check(rubiks_shift2d, reference.shift2d, problem, seed, device)
