"""Forward semantics of the shift ops against independent formulations, on every device.

The independent formulations run on the CPU; the op runs on `device` and its
result is compared there.
"""
import pytest
import torch
import torch.nn.functional as F

from rubiks_service.ops import reference, rubiks_shift2d, rubiks_shift3d
from rubiks_service.ops._checks import SUPPORTED_DTYPES

from ._helpers import GEOMETRIES, cpu_and_cuda, needs_extension, off_integer_shift, shift_by_indexing


def _shift3d_on(device, x, shift, *args, **kwargs):
    """rubiks_shift3d run on `device`, the result back on the CPU."""
    return rubiks_shift3d(x.to(device), shift.to(device), *args, **kwargs).cpu()


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_forward_matches_grid_sample(shape, stride, padding, dtype, tol, device):
    x = torch.randn(shape, dtype=dtype)
    shift = (torch.rand(3, shape[2], dtype=dtype) * 6 - 3)
    ours = _shift3d_on(device, x, shift, stride, padding)
    expected = reference.shift3d_grid_sample(x, shift, stride, padding)
    torch.testing.assert_close(ours, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_positive_shift_reads_higher_index(device):
    x = torch.arange(4.0).reshape(1, 4, 1, 1, 1)
    shift = torch.tensor([[1.0], [0.0], [0.0]])
    assert _shift3d_on(device, x, shift).flatten().tolist() == [1.0, 2.0, 3.0, 0.0]  # last frame is zero


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES)
def test_integer_shift_is_plain_indexing(shape, stride, padding, device):
    x = torch.randn(shape, dtype=torch.float64)
    shift = torch.randint(-3, 4, (3, shape[2])).double()
    torch.testing.assert_close(
        _shift3d_on(device, x, shift, stride, padding), shift_by_indexing(x, shift, stride, padding), atol=0, rtol=0
    )


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_integer_shift_is_exact_in_every_dtype(device):
    x = torch.randn(2, 6, 5, 7, 8)
    shift = torch.randint(-3, 4, (3, 5)).float()
    for dtype in SUPPORTED_DTYPES[device]:
        xd = x.to(dtype)
        expected = rubiks_shift3d(xd.double(), shift.double(), (1, 2, 1), (0, 1, 2)).to(dtype)
        out = rubiks_shift3d(xd.to(device), shift.to(device, dtype), (1, 2, 1), (0, 1, 2))
        assert torch.equal(out.cpu(), expected), dtype


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_tsm_pattern_is_the_temporal_shift_module(device):
    n, t, c, h, w = 2, 8, 16, 5, 5
    x = torch.randn(n, t, c, h, w)
    fold = c // 8
    shift = torch.zeros(3, c)
    shift[0, :fold] = 1.0
    shift[0, fold : 2 * fold] = -1.0
    tsm = torch.zeros_like(x)  # TSM (Lin et al.): one fold from the future, one from the past, rest kept
    tsm[:, :-1, :fold] = x[:, 1:, :fold]
    tsm[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    tsm[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    torch.testing.assert_close(_shift3d_on(device, x, shift), tsm, atol=0, rtol=0)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES)
def test_quantized_forward_is_indexing_with_rounded_shift(shape, stride, padding, device):
    x = torch.randn(shape, dtype=torch.float64)
    shift = torch.rand(3, shape[2], dtype=torch.float64) * 6 - 3
    shift[:, 0] = torch.tensor([0.5, -0.5, -1.5])  # ties round half up: 1, 0, -1
    rounded = torch.floor(shift + 0.5)
    assert rounded[:, 0].tolist() == [1.0, 0.0, -1.0]
    torch.testing.assert_close(
        _shift3d_on(device, x, shift, stride, padding, quantize=True),
        shift_by_indexing(x, rounded, stride, padding),
        atol=0,
        rtol=0,
    )


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((1, 3), (2, 0))])
def test_shift2d_matches_grid_sample(stride, padding, device):
    n, c, h, w = 2, 5, 9, 8
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    shift = off_integer_shift(2, c, span=3)
    out = rubiks_shift2d(x.to(device), shift.to(device), stride, padding).cpu()
    # independent 2D formulation: each channel sampled with its own grid
    axes = []
    for row, size in enumerate((h, w)):
        m = (size + 2 * padding[row] - 1) // stride[row] + 1
        pos = (torch.arange(m, dtype=x.dtype) * stride[row] - padding[row])[None, :] + shift[row][:, None]
        axes.append(pos * 2 / (size - 1) - 1)
    gh, gw = axes
    grid = torch.stack(torch.broadcast_tensors(gw[:, None, :], gh[:, :, None]), dim=-1)  # (C, mh, mw, 2)
    expected = F.grid_sample(  # channels as the batch, the batch as channels
        x.transpose(0, 1),
        grid,
        align_corners=True,
        padding_mode="zeros",
    )
    torch.testing.assert_close(out, expected.transpose(0, 1), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_shift2d_is_3d_on_one_frame(device):
    x = torch.randn(3, 6, 7, 8, dtype=torch.float64, device=device)
    shift = off_integer_shift(2, 6, device=device)
    zeros = torch.zeros(1, 6, dtype=torch.float64, device=device)
    out3d = rubiks_shift3d(x.unsqueeze(1), torch.cat([zeros, shift]), (1, 2, 1), (0, 1, 0))
    torch.testing.assert_close(rubiks_shift2d(x, shift, (2, 1), (1, 0)), out3d.squeeze(1))


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_non_contiguous_input(device):
    base = torch.randn(2, 6, 4, 7, 5, dtype=torch.float64, device=device)
    x = base.permute(0, 1, 2, 4, 3)  # (2, 6, 4, 5, 7), not contiguous
    shift = off_integer_shift(3, 4, device=device)
    torch.testing.assert_close(rubiks_shift3d(x, shift), rubiks_shift3d(x.contiguous(), shift), atol=0, rtol=0)


@needs_extension
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_empty_input_axis_with_padding_reads_zeros(device):
    """T = 0 with padding 1 still has output frames ((0 + 2 - 1) // 1 + 1 = 2), all zero."""
    ops = torch.ops.rubiks
    x = torch.randn(2, 0, 3, 4, 4, device=device)
    shift = torch.rand(3, 3, device=device)
    out = ops.shift3d(x, shift, [1, 1, 1], [1, 0, 0], False)
    assert out.shape == (2, 2, 3, 4, 4) and not out.any()
    gs = ops.shift3d_grad_shift(torch.randn_like(out), x, shift, [1, 1, 1], [1, 0, 0])
    assert not gs.any()


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_fp32_agrees_with_fp64(device):
    x = torch.randn(2, 8, 16, 14, 14, dtype=torch.float64, device=device)
    shift = torch.rand(3, 16, dtype=torch.float64, device=device) * 4 - 2
    torch.testing.assert_close(
        rubiks_shift3d(x.float(), shift.float()).double(), rubiks_shift3d(x, shift), atol=1e-5, rtol=1e-5
    )
