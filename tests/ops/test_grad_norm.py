"""Scaled gradient normalisation (paper Eq. 9/10) and its hook-up in the shift modules."""
import pytest
import torch

from rubiks_service.ops import RubiksShift2d, RubiksShift3d, normalize_shift_grad


def test_unit_norm_per_channel():
    g = torch.randn(3, 10, dtype=torch.float64)
    out = normalize_shift_grad(g)
    torch.testing.assert_close(out.norm(dim=0), torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(out, g / g.norm(dim=0))


def test_temporal_factor_scales_time_before_normalising():
    g = torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64)
    out = normalize_shift_grad(g, temporal_factor=4.0)  # (4, 2, 4) / 6
    torch.testing.assert_close(out, torch.tensor([[4 / 6], [2 / 6], [4 / 6]], dtype=torch.float64))


def test_negative_factor_is_temporal_sign_update():
    g = torch.tensor([[0.3, -2.0], [5.0, 1.0], [-1.0, 7.0]])
    out = normalize_shift_grad(g, temporal_factor=-1.0)
    assert out.tolist() == [[1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]


def test_zero_gradient_stays_zero():
    out = normalize_shift_grad(torch.zeros(3, 4))
    assert torch.equal(out, torch.zeros(3, 4))


def test_two_d_gradient():
    g = torch.tensor([[3.0], [4.0]])
    assert normalize_shift_grad(g).flatten().tolist() == pytest.approx([0.6, 0.8])


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        normalize_shift_grad(torch.zeros(4, 3))


@pytest.mark.parametrize("factor", [1.0, 0.5, -1.0])
def test_module_applies_normalisation_to_its_parameter(factor):
    x = torch.randn(2, 4, 6, 5, 5)
    raw = RubiksShift3d(6, normalize_grad=False)
    normed = RubiksShift3d(6, normalize_grad=True, temporal_factor=factor)
    normed.shift.data.copy_(raw.shift.data)
    raw(x).square().sum().backward()
    normed(x).square().sum().backward()
    torch.testing.assert_close(normed.shift.grad, normalize_shift_grad(raw.shift.grad, factor))


def test_module_normalisation_can_be_switched_off():
    m = RubiksShift2d(4, normalize_grad=False)
    m(torch.randn(1, 4, 6, 6)).sum().backward()
    assert not torch.allclose(m.shift.grad.norm(dim=0), torch.ones(4))
