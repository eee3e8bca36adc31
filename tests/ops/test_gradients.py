"""Gradients of the shift ops on every device: gradcheck, the integer-shift convention,
RS-Q, reference agreement, odd layouts, empty batches, determinism."""
import pytest
import torch
from torch.autograd import gradcheck

from rubiks_service.ops import reference, rubiks_shift2d, rubiks_shift3d
from rubiks_service.ops._checks import SUPPORTED_DTYPES

from ._helpers import GEOMETRIES, cpu_and_cuda, needs_extension, off_integer_shift

GEOMETRIES_3D = [
    ((2, 4, 3, 5, 6), (1, 1, 1), (0, 0, 0)),
    ((1, 5, 2, 6, 6), (1, 2, 2), (0, 1, 1)),
    ((2, 4, 3, 5, 4), (2, 1, 3), (1, 2, 0)),
]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES_3D + GEOMETRIES)
@pytest.mark.parametrize("contiguous", [True, False])
def test_gradcheck_3d(shape, stride, padding, contiguous, device):
    x = torch.randn(shape, dtype=torch.float64, device=device)
    if not contiguous:  # same values, transposed storage
        x = x.transpose(3, 4).contiguous().transpose(3, 4)
        assert not x.is_contiguous()
    x.requires_grad_()
    shift = off_integer_shift(3, shape[2], device=device).requires_grad_()
    assert gradcheck(lambda a, b: rubiks_shift3d(a, b, stride, padding), (x, shift))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((3, 1), (0, 2))])
def test_gradcheck_2d(stride, padding, device):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, device=device, requires_grad=True)
    shift = off_integer_shift(2, 3, device=device).requires_grad_()
    assert gradcheck(lambda a, b: rubiks_shift2d(a, b, stride, padding), (x, shift))


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_gradcheck_non_contiguous_grad_output(device):
    x = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64, device=device, requires_grad=True)
    shift = off_integer_shift(3, 3, device=device).requires_grad_()
    out = rubiks_shift3d(x, shift)
    grad = torch.randn(5, 5, 3, 4, 2, dtype=torch.float64, device=device).permute(4, 3, 2, 1, 0)  # non-contiguous
    gx, gs = torch.autograd.grad(out, (x, shift), grad)
    gx_ref, gs_ref = torch.autograd.grad(rubiks_shift3d(x, shift), (x, shift), grad.contiguous())
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0)
    torch.testing.assert_close(gs, gs_ref, atol=0, rtol=0)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_non_contiguous_inputs(device):
    base = torch.randn(2, 6, 4, 7, 5, dtype=torch.float64, device=device)
    x = base.permute(0, 1, 2, 4, 3).requires_grad_()  # (2, 6, 4, 5, 7), not contiguous
    shift = off_integer_shift(4, 3, device=device).t().requires_grad_()  # (3, 4), not contiguous
    assert not x.is_contiguous() and not shift.is_contiguous()
    out = rubiks_shift3d(x, shift, (1, 2, 1), (0, 1, 0))
    grad = torch.randn(out.shape[::-1], dtype=torch.float64, device=device).permute(4, 3, 2, 1, 0)
    assert not grad.is_contiguous()
    gx, gs = torch.autograd.grad(out, (x, shift), grad)
    xc = x.detach().contiguous().requires_grad_()
    sc = shift.detach().contiguous().requires_grad_()
    out_c = rubiks_shift3d(xc, sc, (1, 2, 1), (0, 1, 0))
    gx_c, gs_c = torch.autograd.grad(out_c, (xc, sc), grad.contiguous())
    torch.testing.assert_close(out, out_c, atol=0, rtol=0)
    torch.testing.assert_close(gx, gx_c, atol=0, rtol=0)
    torch.testing.assert_close(gs, gs_c, atol=0, rtol=0)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_empty_batch(dtype, device):
    if dtype not in SUPPORTED_DTYPES[device]:
        pytest.skip(f"no {dtype} kernels on {device}")
    x = torch.randn(0, 4, 3, 5, 5, device=device, dtype=dtype, requires_grad=True)
    shift = torch.rand(3, 3, device=device, dtype=dtype, requires_grad=True)
    out = rubiks_shift3d(x, shift, (1, 2, 2), (0, 1, 1))
    assert out.shape == (0, 4, 3, 4, 4) and out.device.type == device
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(shift.grad, torch.zeros(3, 3, device=device, dtype=dtype))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES_3D)
@pytest.mark.parametrize("quantize", [False, True])
def test_gradients_match_reference(shape, stride, padding, quantize, device):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    shift = (torch.rand(3, shape[2], dtype=torch.float64) * 6 - 3).requires_grad_()
    out = rubiks_shift3d(x.to(device), shift.to(device), stride, padding, quantize)  # grads reach the CPU leaves
    ref = reference.shift3d(x, shift, stride, padding, quantize)
    grad = torch.randn(out.shape, dtype=torch.float64)
    ours = torch.autograd.grad(out, (x, shift), grad.to(device))
    for a, b in zip(ours, torch.autograd.grad(ref, (x, shift), grad)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def _loss(x, shift, weights):
    return (rubiks_shift3d(x, shift) * weights).sum()


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_integer_shift_gradient_is_the_derivative_from_above(device):
    """At an integer shift the loss has a kink; the op returns the right-sided derivative."""
    x = torch.randn(2, 5, 3, 6, 6, dtype=torch.float64, device=device)
    weights = torch.randn(2, 5, 3, 6, 6, dtype=torch.float64, device=device)
    shift = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0], [-2.0, 0.0, 1.0]], dtype=torch.float64, device=device)
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


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_quantized_gradients_are_straight_through(device):
    x = torch.randn(2, 6, 4, 7, 7, dtype=torch.float64, device=device, requires_grad=True)
    shift = off_integer_shift(3, 4, device=device).requires_grad_()
    grad = torch.randn(2, 6, 4, 7, 7, dtype=torch.float64, device=device)
    gx_q, gs_q = torch.autograd.grad(rubiks_shift3d(x, shift, quantize=True), (x, shift), grad)
    # the shift gets the gradient of the interpolated op at the continuous shift (the
    # same kernel on the same operands: bit for bit)...
    (gs_interp,) = torch.autograd.grad(rubiks_shift3d(x, shift), shift, grad)
    torch.testing.assert_close(gs_q, gs_interp, atol=0, rtol=0)
    # ...the input the exact gradient of the quantized gather (the same as with rounded shifts)
    (gx_rounded,) = torch.autograd.grad(rubiks_shift3d(x, torch.floor(shift.detach() + 0.5)), x, grad)
    torch.testing.assert_close(gx_q, gx_rounded, atol=0, rtol=0)


@needs_extension
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_shift_gradient_is_deterministic(device):
    """The shift-gradient reduction uses no atomics: repeated runs agree bit for bit."""
    ops = torch.ops.rubiks
    x = torch.randn(4, 8, 12, 30, 30, device=device)
    shift = torch.rand(3, 12, device=device) * 4 - 2
    grad = torch.randn(4, 8, 12, 30, 30, device=device)
    first = ops.shift3d_grad_shift(grad, x, shift, [1, 1, 1], [0, 0, 0])
    for _ in range(3):
        assert torch.equal(ops.shift3d_grad_shift(grad, x, shift, [1, 1, 1], [0, 0, 0]), first)


def test_shift_gradient_does_not_depend_on_thread_count():
    """CPU kernels: the per-channel reduction runs in a fixed order whatever the thread count."""
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
