"""CUDA kernels of the shift ops (ext/cuda/): agreement with the CPU kernels in
value and gradients, gradcheck, opcheck, torch.compile, autocast, odd layouts.

Runs only where torch sees a GPU; everything here is skipped on a CPU-only
machine. The CPU kernels are the reference (they are tested against independent
formulations in test_forward.py / test_gradients.py / test_properties.py).

Tolerances: float64 1e-10, float32 1e-5 (the shift gradient, a sum over N*T*H*W
terms, to 1e-5 of its largest entry); float16 2e-3 and bfloat16 1.6e-2 relative
(a few units of the last place of the stored result; the kernels accumulate in
float32), against float64 on the same rounded inputs.
"""
import pytest
import torch
from torch.autograd import gradcheck
from torch.library import opcheck

from rubiks_service.ops import RubiksShift3d, has_kernel, rubiks_shift2d, rubiks_shift3d
from rubiks_service.ops._checks import output_shape

from ._helpers import off_integer_shift
from .test_registration import _Block, check_backward_ops

CUDA = torch.cuda.is_available()
HAS_CUDA_KERNEL = CUDA and has_kernel(torch.device("cuda"))

pytestmark = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
needs_kernel = pytest.mark.skipif(
    CUDA and not HAS_CUDA_KERNEL, reason="the extension was built without its CUDA kernels"
)

OPS = torch.ops.rubiks
DEV = "cuda"

GEOMETRIES = [
    ((2, 5, 4, 7, 9), (1, 1, 1), (0, 0, 0)),
    ((2, 8, 6, 8, 8), (1, 2, 2), (0, 0, 0)),
    ((1, 6, 3, 9, 7), (1, 2, 2), (0, 1, 1)),
    ((3, 4, 5, 6, 5), (2, 3, 1), (1, 0, 2)),
    ((3, 300, 2, 4, 4), (1, 1, 1), (0, 0, 0)),  # many small planes: several chunks per channel
    ((1, 3, 2, 100, 97), (2, 1, 2), (1, 1, 0)),  # planes larger than a block's share
    ((2, 1, 3, 1, 5), (1, 1, 1), (0, 0, 0)),  # size-1 axes
    ((2, 3, 2, 5, 1), (3, 3, 3), (2, 2, 2)),  # padding larger than the input
]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


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


@needs_kernel
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES)
@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_cpu(shape, stride, padding, quantize, dtype):
    x, shift = _problem(shape)
    x, shift = x.to(dtype), shift.to(dtype)
    out_c, gx_c, gs_c, grad = _all_grads(x, shift, stride, padding, quantize)
    out_g, gx_g, gs_g, _ = _all_grads(x.to(DEV), shift.to(DEV), stride, padding, quantize, grad.to(DEV))
    assert out_g.device.type == "cuda" and out_g.dtype == dtype
    tol = TOL[dtype]
    _close(out_g, out_c, tol)
    _close(gx_g, gx_c, tol)
    _close(gs_g, gs_c, tol, scale_atol=True)


@needs_kernel
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES)
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
    tol = TOL[dtype]
    _close(out_g, out_c, tol)
    _close(gx_g, gx_c, tol)
    _close(gs_g, gs_c, tol, scale_atol=True)


@needs_kernel
def test_integer_shift_is_exact_in_every_dtype():
    x = torch.randn(2, 6, 5, 7, 8)
    shift = torch.randint(-3, 4, (3, 5)).float()
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        xd = x.to(dtype)
        expected = rubiks_shift3d(xd.double(), shift.double(), (1, 2, 1), (0, 1, 2)).to(dtype)
        out = rubiks_shift3d(xd.to(DEV), shift.to(DEV, dtype), (1, 2, 1), (0, 1, 2))
        assert torch.equal(out.cpu(), expected), dtype


@needs_kernel
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES[:4])
@pytest.mark.parametrize("contiguous", [True, False])
def test_gradcheck_3d(shape, stride, padding, contiguous):
    x = torch.randn(shape, dtype=torch.float64, device=DEV)
    if not contiguous:
        x = x.transpose(3, 4).contiguous().transpose(3, 4)
        assert not x.is_contiguous()
    x.requires_grad_()
    shift = off_integer_shift(3, shape[2], device=DEV).requires_grad_()
    assert gradcheck(lambda a, b: rubiks_shift3d(a, b, stride, padding), (x, shift))


@needs_kernel
@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((3, 1), (0, 2))])
def test_gradcheck_2d(stride, padding):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, device=DEV, requires_grad=True)
    shift = off_integer_shift(2, 3, device=DEV).requires_grad_()
    assert gradcheck(lambda a, b: rubiks_shift2d(a, b, stride, padding), (x, shift))


@needs_kernel
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


@needs_kernel
def test_quantized_gradients_are_straight_through():
    x = torch.randn(2, 6, 4, 7, 7, dtype=torch.float64, device=DEV, requires_grad=True)
    shift = off_integer_shift(3, 4, device=DEV).requires_grad_()
    grad = torch.randn(2, 6, 4, 7, 7, dtype=torch.float64, device=DEV)
    gx_q, gs_q = torch.autograd.grad(rubiks_shift3d(x, shift, quantize=True), (x, shift), grad)
    (gs_interp,) = torch.autograd.grad(rubiks_shift3d(x, shift), shift, grad)
    torch.testing.assert_close(gs_q, gs_interp, atol=0, rtol=0)
    (gx_rounded,) = torch.autograd.grad(rubiks_shift3d(x, torch.floor(shift.detach() + 0.5)), x, grad)
    torch.testing.assert_close(gx_q, gx_rounded, atol=0, rtol=0)


@needs_kernel
def test_shift_gradient_is_deterministic():
    """The shift-gradient reduction uses no atomics: repeated runs agree bit for bit."""
    x = torch.randn(4, 8, 12, 30, 30, device=DEV)
    shift = torch.rand(3, 12, device=DEV) * 4 - 2
    grad = torch.randn(4, 8, 12, 30, 30, device=DEV)
    first = OPS.shift3d_grad_shift(grad, x, shift, [1, 1, 1], [0, 0, 0])
    for _ in range(3):
        assert torch.equal(OPS.shift3d_grad_shift(grad, x, shift, [1, 1, 1], [0, 0, 0]), first)


@needs_kernel
def test_non_contiguous_inputs():
    base = torch.randn(2, 6, 4, 7, 5, dtype=torch.float64, device=DEV)
    x = base.permute(0, 1, 2, 4, 3).requires_grad_()  # (2, 6, 4, 5, 7), not contiguous
    shift = off_integer_shift(4, 3, device=DEV).t().requires_grad_()  # (3, 4), not contiguous
    assert not x.is_contiguous() and not shift.is_contiguous()
    out = rubiks_shift3d(x, shift, (1, 2, 1), (0, 1, 0))
    grad = torch.randn(out.shape[::-1], dtype=torch.float64, device=DEV).permute(4, 3, 2, 1, 0)
    assert not grad.is_contiguous()
    gx, gs = torch.autograd.grad(out, (x, shift), grad)
    xc = x.detach().contiguous().requires_grad_()
    sc = shift.detach().contiguous().requires_grad_()
    out_c = rubiks_shift3d(xc, sc, (1, 2, 1), (0, 1, 0))
    gx_c, gs_c = torch.autograd.grad(out_c, (xc, sc), grad.contiguous())
    torch.testing.assert_close(out, out_c, atol=0, rtol=0)
    torch.testing.assert_close(gx, gx_c, atol=0, rtol=0)
    torch.testing.assert_close(gs, gs_c, atol=0, rtol=0)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_empty_batch(dtype):
    x = torch.randn(0, 4, 3, 5, 5, device=DEV, dtype=dtype, requires_grad=True)
    shift = torch.rand(3, 3, device=DEV, dtype=dtype, requires_grad=True)
    out = rubiks_shift3d(x, shift, (1, 2, 2), (0, 1, 1))
    assert out.shape == (0, 4, 3, 4, 4) and out.device.type == "cuda"
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(shift.grad, torch.zeros(3, 3, device=DEV, dtype=dtype))


@needs_kernel
def test_empty_input_axis_with_padding_reads_zeros():
    """T = 0 with padding 1 still has output frames ((0 + 2 - 1) // 1 + 1 = 2), all zero."""
    x = torch.randn(2, 0, 3, 4, 4, device=DEV)
    shift = torch.rand(3, 3, device=DEV)
    out = OPS.shift3d(x, shift, [1, 1, 1], [1, 0, 0], False)
    assert out.shape == (2, 2, 3, 4, 4) and not out.any()
    gs = OPS.shift3d_grad_shift(torch.randn_like(out), x, shift, [1, 1, 1], [1, 0, 0])
    assert not gs.any()


@needs_kernel
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


@needs_kernel
def test_bad_input_on_cuda():
    x = torch.randn(1, 2, 3, 4, 4, device=DEV)
    with pytest.raises(ValueError, match="is on"):
        rubiks_shift3d(x, torch.rand(3, 3))  # shift on the CPU
    with pytest.raises(TypeError, match="dtype mismatch"):  # outside autocast
        rubiks_shift3d(x, torch.rand(3, 3, device=DEV, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="dtype mismatch"):
        OPS.shift3d(x, torch.rand(3, 3, device=DEV).double(), [1, 1, 1], [0, 0, 0], False)
    with pytest.raises(RuntimeError, match=r"shift must have shape \(3, C\)"):
        OPS.shift3d(x, torch.rand(3, 5, device=DEV), [1, 1, 1], [0, 0, 0], False)


# ---- registration: opcheck, torch.compile ------------------------------------

def _opcheck_cases():
    for stride, padding in [([1, 1, 1], [0, 0, 0]), ([1, 2, 2], [0, 1, 1])]:
        for quantize in (False, True):
            for dtype in (torch.float64, torch.bfloat16):
                x = torch.randn(2, 4, 3, 6, 5, dtype=dtype, device=DEV, requires_grad=True)
                shift = off_integer_shift(3, 3, device=DEV).to(dtype).requires_grad_()
                yield OPS.shift3d.default, (x, shift, stride, padding, quantize)
                x2 = torch.randn(2, 3, 6, 5, dtype=dtype, device=DEV, requires_grad=True)
                shift2 = off_integer_shift(2, 3, device=DEV).to(dtype).requires_grad_()
                yield OPS.shift2d.default, (x2, shift2, stride[1:], padding[1:], quantize)


@needs_kernel
def test_opcheck_forward():
    for op, args in _opcheck_cases():
        opcheck(op, args)


@needs_kernel
def test_opcheck_backward_ops():
    check_backward_ops(DEV)


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


@pytest.fixture
def no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _eager_and_compiled(model, x, autocast_dtype=None):
    def step(m):
        model.zero_grad()
        with torch.autocast(DEV, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            out = m(x)
        out.float().square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    torch._dynamo.reset()
    eager = step(model)
    compiled = step(torch.compile(model, fullgraph=True))
    return eager, compiled


@needs_kernel
@pytest.mark.slow
def test_torch_compile_fullgraph_matches_eager(no_tf32):
    model = _Block(8).to(DEV)
    x = torch.randn(2, 4, 8, 10, 10, device=DEV)
    (out_e, grads_e), (out_c, grads_c) = _eager_and_compiled(model, x)
    torch.testing.assert_close(out_c, out_e, atol=1e-5, rtol=1e-5)
    for g_c, g_e in zip(grads_c, grads_e):
        torch.testing.assert_close(g_c, g_e, atol=1e-5, rtol=1e-5)


# ---- autocast -----------------------------------------------------------------

@needs_kernel
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


@needs_kernel
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


@needs_kernel
@pytest.mark.slow
def test_torch_compile_under_autocast():
    model = _AmpBlock(8).to(DEV)
    x = torch.randn(2, 4, 8, 10, 10, device=DEV)
    (out_e, grads_e), (out_c, grads_c) = _eager_and_compiled(model, x, torch.bfloat16)
    assert out_e.dtype == out_c.dtype == torch.bfloat16
    torch.testing.assert_close(out_c.float(), out_e.float(), atol=5e-2, rtol=5e-2)
    for g_c, g_e in zip(grads_c, grads_e):
        assert g_c.dtype == torch.float32
        torch.testing.assert_close(g_c, g_e, atol=5e-2, rtol=5e-2)


# ---- 64-bit offsets -------------------------------------------------------------

@needs_kernel
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
