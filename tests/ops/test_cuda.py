"""What only the CUDA kernels (ext/cuda/) have: agreement with the CPU kernels in
value and gradients in every dtype and work split, streams and device guards,
autocast, 64-bit offsets. The rest of the op tests run on CUDA too, through their
`device` parameter.

Runs only where torch sees a GPU; everything here is skipped on a CPU-only
machine. The CPU kernels are the reference (they are tested against independent
formulations in test_forward.py / test_gradients.py / test_properties.py).

Tolerances (_helpers.DTYPE_TOL): float64 1e-10, float32 1e-5 (the shift gradient, a
sum over N*T*H*W terms, to 1e-5 of its largest entry); float16 2e-3 and bfloat16
1.6e-2 relative, against float64 on the same rounded inputs.
"""
import pytest
import torch

from rubiks_service.ops import RubiksShift3d, rubiks_shift2d, rubiks_shift3d
from rubiks_service.ops._checks import output_shape

from ._helpers import CUDA, DTYPE_TOL, HAS_CUDA_KERNEL, SPLIT_GEOMETRIES, eager_and_compiled, needs_cuda

pytestmark = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")

OPS = torch.ops.rubiks
DEV = "cuda"


def _problem(shape, dtype=torch.float64, span=3.0):
    """x, shift and an output gradient on the CPU, in float64, rounded through `dtype`."""
    x = torch.randn(shape, dtype=torch.float64).to(dtype).double()
    shift = (torch.rand(3, shape[2], dtype=torch.float64) * 2 * span - span).to(dtype).double()
    return x, shift


def _all_grads(x, shift, stride, padding, quantize, grad=None):
    """(out, grad_x, grad_shift) through the public API and autograd."""
    x = x.detach().requires_grad_()
    shift = shift.detach().requires_grad_()
    out = rubiks_shift3d(x, shift, stride, padding, quantize)
    if grad is None:
        grad = torch.randn(out.shape, dtype=torch.float64).to(out.dtype).to(out.device)
    gx, gs = torch.autograd.grad(out, (x, shift), grad)
    return out.detach(), gx, gs, grad


def _close(actual, expected, tol, *, scale_atol=False):
    atol = tol * max(1.0, expected.abs().max().item()) if scale_atol and expected.numel() else tol
    torch.testing.assert_close(actual.cpu().double(), expected.cpu().double(), atol=atol, rtol=tol)


def test_cuda_kernels_are_built():
    """On a GPU machine the extension must carry its CUDA kernels (else every test below skips)."""
    assert HAS_CUDA_KERNEL, (
        "torch sees a GPU but rubiks_service._C has no CUDA kernels: rebuild with "
        "`pip install --no-build-isolation -e .` where nvcc and a CUDA torch are present"
    )


@needs_cuda
@pytest.mark.parametrize("shape,stride,padding", SPLIT_GEOMETRIES)
@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_cpu(shape, stride, padding, quantize, dtype):
    x, shift = _problem(shape)
    x, shift = x.to(dtype), shift.to(dtype)
    out_c, gx_c, gs_c, grad = _all_grads(x, shift, stride, padding, quantize)
    out_g, gx_g, gs_g, _ = _all_grads(x.to(DEV), shift.to(DEV), stride, padding, quantize, grad.to(DEV))
    assert out_g.device.type == "cuda" and out_g.dtype == dtype
    tol = DTYPE_TOL[dtype]
    _close(out_g, out_c, tol)
    _close(gx_g, gx_c, tol)
    _close(gs_g, gs_c, tol, scale_atol=True)


@needs_cuda
@pytest.mark.parametrize("shape,stride,padding", SPLIT_GEOMETRIES)
@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_match_float64(shape, stride, padding, quantize, dtype):
    x, shift = _problem(shape, dtype)  # values exactly representable in `dtype`
    grad = torch.randn(output_shape(shape, stride, padding), dtype=torch.float64).to(dtype).double()
    out_c, gx_c, gs_c, _ = _all_grads(x, shift, stride, padding, quantize, grad)
    out_g, gx_g, gs_g, _ = _all_grads(
        x.to(DEV, dtype), shift.to(DEV, dtype), stride, padding, quantize, grad.to(DEV, dtype)
    )
    assert out_g.dtype == gx_g.dtype == gs_g.dtype == dtype
    tol = DTYPE_TOL[dtype]
    _close(out_g, out_c, tol)
    _close(gx_g, gx_c, tol)
    _close(gs_g, gs_c, tol, scale_atol=True)


@needs_cuda
@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((1, 3), (2, 0))])
@pytest.mark.parametrize("quantize", [False, True])
def test_2d_matches_cpu(stride, padding, quantize):
    x = torch.randn(3, 5, 9, 8, dtype=torch.float64)
    shift = torch.rand(2, 5, dtype=torch.float64) * 6 - 3
    grad = torch.randn(3, 5, *[(s + 2 * p - 1) // st + 1 for s, st, p in zip((9, 8), stride, padding)],
                       dtype=torch.float64)
    results = []
    for dev in ("cpu", DEV):
        xd = x.to(dev).requires_grad_()
        sd = shift.to(dev).requires_grad_()
        out = rubiks_shift2d(xd, sd, stride, padding, quantize)
        results.append((out, *torch.autograd.grad(out, (xd, sd), grad.to(dev))))
    for c, g in zip(*results):
        _close(g, c, 1e-10)


@needs_cuda
def test_side_stream_and_device_guard():
    x = torch.randn(2, 5, 4, 9, 9, device=DEV)
    shift = torch.rand(3, 4, device=DEV) * 2 - 1
    expected = rubiks_shift3d(x.cpu(), shift.cpu(), (1, 2, 2), (0, 1, 1))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = rubiks_shift3d(x, shift, (1, 2, 2), (0, 1, 1))
    stream.synchronize()
    _close(out, expected, 1e-5)
    if torch.cuda.device_count() > 1:  # tensors on a device other than the current one
        x1, s1 = x.to("cuda:1"), shift.to("cuda:1")
        with torch.cuda.device(0):
            out1 = rubiks_shift3d(x1, s1, (1, 2, 2), (0, 1, 1))
        assert out1.device == torch.device("cuda:1")
        _close(out1, expected, 1e-5)


class _AmpBlock(torch.nn.Module):
    """1x1 conv -> shift -> 1x1 conv: under autocast the shift meets low-precision features."""

    def __init__(self, c):
        super().__init__()
        self.pre = torch.nn.Conv2d(c, c, 1)
        self.shift = RubiksShift3d(c, stride=(1, 2, 2), padding=(0, 1, 1))
        self.post = torch.nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, t, c, h, w = x.shape
        y = self.shift(self.pre(x.reshape(n * t, c, h, w)).reshape(n, t, c, h, w))
        n, t, c, h, w = y.shape
        return self.post(y.reshape(n * t, c, h, w)).reshape(n, t, c, h, w)


# ---- autocast -----------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_in_the_dtype_of_x(amp_dtype):
    """Under autocast a float32 shift parameter meets low-precision features: the op
    casts the shift to x's dtype (AutocastCUDA kernel) and the parameter still gets a
    float32 gradient, that of the low-precision op."""
    conv = torch.nn.Conv2d(8, 8, 1).to(DEV)
    x = torch.randn(2 * 4, 8, 10, 10, device=DEV)
    shift = torch.nn.Parameter(torch.rand(3, 8, device=DEV) * 4 - 2)
    with torch.autocast(DEV, dtype=amp_dtype):
        feats = conv(x).reshape(2, 4, 8, 10, 10)
        assert feats.dtype == amp_dtype
        out = rubiks_shift3d(feats, shift, (1, 2, 2), (0, 1, 1))
    assert out.dtype == amp_dtype
    grad = torch.randn(out.shape, device=DEV).to(amp_dtype)
    (gs,) = torch.autograd.grad(out, shift, grad)
    assert gs.dtype == torch.float32
    # the same computation written out by hand, outside autocast
    low_shift = shift.detach().to(amp_dtype).requires_grad_()
    manual = rubiks_shift3d(feats.detach(), low_shift, (1, 2, 2), (0, 1, 1))
    (gs_manual,) = torch.autograd.grad(manual, low_shift, grad)
    torch.testing.assert_close(out, manual, atol=0, rtol=0)
    torch.testing.assert_close(gs, gs_manual.float(), atol=0, rtol=0)
    # float32 features under autocast stay float32
    with torch.autocast(DEV, dtype=amp_dtype):
        out32 = rubiks_shift3d(x.reshape(2, 4, 8, 10, 10), shift)
    assert out32.dtype == torch.float32


@needs_cuda
def test_autocast_2d_and_module():
    x = torch.randn(2, 6, 9, 9, device=DEV).to(torch.bfloat16)
    shift = torch.nn.Parameter(torch.rand(2, 6, device=DEV) - 0.5)
    with torch.autocast(DEV, dtype=torch.bfloat16):
        out = rubiks_shift2d(x, shift, (2, 2), (1, 1))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert shift.grad is not None and shift.grad.dtype == torch.float32
    module = RubiksShift3d(6).to(DEV)  # normalised gradient wrapper on the parameter
    with torch.autocast(DEV, dtype=torch.bfloat16):
        y = module(torch.randn(2, 3, 6, 5, 5, device=DEV).to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert module.shift.grad.dtype == torch.float32 and torch.isfinite(module.shift.grad).all()


@needs_cuda
@pytest.mark.slow
def test_torch_compile_under_autocast():
    model = _AmpBlock(8).to(DEV)
    x = torch.randn(2, 4, 8, 10, 10, device=DEV)
    (out_e, grads_e), (out_c, grads_c) = eager_and_compiled(model, x, torch.bfloat16)
    assert out_e.dtype == out_c.dtype == torch.bfloat16
    torch.testing.assert_close(out_c.float(), out_e.float(), atol=5e-2, rtol=5e-2)
    for g_c, g_e in zip(grads_c, grads_e):
        assert g_c.dtype == torch.float32
        torch.testing.assert_close(g_c, g_e, atol=5e-2, rtol=5e-2)


# ---- 64-bit offsets -------------------------------------------------------------

@needs_cuda
@pytest.mark.slow
def test_more_than_2_31_elements():
    """A tensor past 2^31 elements (whole-tensor offsets need 64 bits): integer shifts
    on the last channel, whose elements all lie beyond 2^31, against plain slicing."""
    n, t, c, h, w = 1, 1, 2, 32800, 32800  # 2.15e9 elements, 4.3 GB in float16 each tensor
    if torch.cuda.mem_get_info()[0] < 24 * 2**30:
        pytest.skip("needs 24 GiB of free GPU memory")
    x = torch.randn(n, t, c, h, w, device=DEV, dtype=torch.float16)
    assert x.numel() > 2**31
    shift = torch.tensor([[0.0, 0.0], [0.0, -1.0], [0.0, 1.0]], device=DEV, dtype=torch.float16)
    out = rubiks_shift3d(x, shift)
    assert torch.equal(out[:, :, 0], x[:, :, 0])
    # channel 1 reads (h - 1, w + 1)
    assert torch.equal(out[:, :, 1, 1:, :-1], x[:, :, 1, :-1, 1:])
    assert not out[:, :, 1, 0].any() and not out[:, :, 1, :, -1].any()
    del out
    grad_x = OPS.shift3d_grad_input(x, shift, list(x.shape), [1, 1, 1], [0, 0, 0], False)
    assert torch.equal(grad_x[:, :, 1, :-1, 1:], x[:, :, 1, 1:, :-1])
    assert not grad_x[:, :, 1, -1].any() and not grad_x[:, :, 1, :, 0].any()
