"""Gradients of the shift ops: gradcheck, the integer-shift convention, RS-Q, reference agreement."""
import pytest
import torch
from torch.autograd import gradcheck

from rubiks_service.ops import reference, rubiks_shift2d, rubiks_shift3d

from ._helpers import off_integer_shift

GEOMETRIES_3D = [
    ((2, 4, 3, 5, 6), (1, 1, 1), (0, 0, 0)),
    ((1, 5, 2, 6, 6), (1, 2, 2), (0, 1, 1)),
    ((2, 4, 3, 5, 4), (2, 1, 3), (1, 2, 0)),
]


@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES_3D)
@pytest.mark.parametrize("contiguous", [True, False])
def test_gradcheck_3d(shape, stride, padding, contiguous):
    x = torch.randn(shape, dtype=torch.float64)
    if not contiguous:  # same values, transposed storage
        x = x.transpose(3, 4).contiguous().transpose(3, 4)
        assert not x.is_contiguous()
    x.requires_grad_()
    shift = off_integer_shift(3, shape[2]).requires_grad_()
    assert gradcheck(lambda a, b: rubiks_shift3d(a, b, stride, padding), (x, shift))


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((3, 1), (0, 2))])
def test_gradcheck_2d(stride, padding):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    shift = off_integer_shift(2, 3).requires_grad_()
    assert gradcheck(lambda a, b: rubiks_shift2d(a, b, stride, padding), (x, shift))


def test_gradcheck_non_contiguous_grad_output():
    x = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    shift = off_integer_shift(3, 3).requires_grad_()
    out = rubiks_shift3d(x, shift)
    grad = torch.randn(5, 5, 3, 4, 2, dtype=torch.float64).permute(4, 3, 2, 1, 0)  # non-contiguous
    gx, gs = torch.autograd.grad(out, (x, shift), grad)
    gx_ref, gs_ref = torch.autograd.grad(rubiks_shift3d(x, shift), (x, shift), grad.contiguous())
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0)
    torch.testing.assert_close(gs, gs_ref, atol=0, rtol=0)


def test_empty_batch_backward():
    x = torch.randn(0, 4, 3, 5, 5, requires_grad=True)
    shift = torch.rand(3, 3, requires_grad=True)
    rubiks_shift3d(x, shift, (1, 2, 2), (0, 1, 1)).sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(shift.grad, torch.zeros(3, 3))


@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES_3D)
@pytest.mark.parametrize("quantize", [False, True])
def test_gradients_match_reference(shape, stride, padding, quantize):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    shift = (torch.rand(3, shape[2], dtype=torch.float64) * 6 - 3).requires_grad_()
    out = rubiks_shift3d(x, shift, stride, padding, quantize)
    ref = reference.shift3d(x, shift, stride, padding, quantize)
    grad = torch.randn_like(out)
    for ours, theirs in zip(torch.autograd.grad(out, (x, shift), grad), torch.autograd.grad(ref, (x, shift), grad)):
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)


def _loss(x, shift, weights):
    return (rubiks_shift3d(x, shift) * weights).sum()


def test_integer_shift_gradient_is_the_derivative_from_above():
    """At an integer shift the loss has a kink; the op returns the right-sided derivative."""
    x = torch.randn(2, 5, 3, 6, 6, dtype=torch.float64)
    weights = torch.randn(2, 5, 3, 6, 6, dtype=torch.float64)
    shift = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0], [-2.0, 0.0, 1.0]], dtype=torch.float64)
    shift.requires_grad_()
    (grad,) = torch.autograd.grad(_loss(x, shift, weights), shift)
    h = 1e-6
    with torch.no_grad():
        base = _loss(x, shift, weights)
        for r in range(3):
            for c in range(3):
                bumped = shift.clone()
                bumped[r, c] += h
                right = (_loss(x, bumped, weights) - base) / h
                bumped[r, c] -= 2 * h
                left = (base - _loss(x, bumped, weights)) / h
                assert abs(grad[r, c] - right) < 1e-6, (r, c)
                # the two sides really differ here, so the convention is observable
                assert abs(left - right) > 1e-3, (r, c)


def test_quantized_gradients_are_straight_through():
    x = torch.randn(2, 6, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    shift = off_integer_shift(3, 4).requires_grad_()
    grad = torch.randn(2, 6, 4, 7, 7, dtype=torch.float64)
    gx_q, gs_q = torch.autograd.grad(rubiks_shift3d(x, shift, quantize=True), (x, shift), grad)
    # the shift gets the gradient of the interpolated op at the continuous shift...
    (gs_interp,) = torch.autograd.grad(rubiks_shift3d(x, shift), shift, grad)
    torch.testing.assert_close(gs_q, gs_interp, atol=1e-12, rtol=1e-12)
    # ...the input the exact gradient of the quantized gather (the same as with rounded shifts)
    (gx_rounded,) = torch.autograd.grad(rubiks_shift3d(x, torch.floor(shift.detach() + 0.5)), x, grad)
    torch.testing.assert_close(gx_q, gx_rounded, atol=0, rtol=0)


def test_shift_gradient_does_not_depend_on_thread_count():
    x = torch.randn(4, 8, 12, 14, 14)
    shift = torch.rand(3, 12, requires_grad=True)
    grad = torch.randn(4, 8, 12, 14, 14)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, max(2, threads)):
            torch.set_num_threads(n)
            (g,) = torch.autograd.grad(rubiks_shift3d(x, shift), shift, grad)
            results.append(g)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])
