"""The nn.Module face: shapes, initialisations, 2D -> 3D inflation."""
import pytest
import torch

from rubiks_service.ops import RubiksShift2d, RubiksShift3d, rubiks_shift3d


def test_uniform_init_range():
    m = RubiksShift3d(64)
    assert m.shift.shape == (3, 64)
    assert m.shift.abs().max() <= 1.0 and m.shift.std() > 0.3


def test_tsm_init():
    m = RubiksShift3d(32, init="tsm")
    t = m.shift.detach()[0]
    assert torch.equal(t[:4], torch.ones(4)) and torch.equal(t[4:8], -torch.ones(4))
    assert t[8:].abs().max() < 1e-2 and m.shift.detach()[1:].abs().max() < 1e-2
    # at near-zero spatial shifts the module is the TSM shift up to the noise
    x = torch.randn(1, 8, 32, 4, 4)
    exact = torch.zeros(3, 32)
    exact[0, :4], exact[0, 4:8] = 1, -1
    torch.testing.assert_close(m(x), rubiks_shift3d(x, exact), atol=0.1, rtol=0)


def test_unknown_init():
    with pytest.raises(ValueError, match="unknown shift init"):
        RubiksShift3d(8, init="gaussian")


def test_strided_module_halves_space():
    m = RubiksShift3d(8, stride=(1, 2, 2))
    assert m(torch.randn(2, 8, 8, 56, 56)).shape == (2, 8, 8, 28, 28)


def test_from_2d_inflation():
    m2 = RubiksShift2d(16, stride=2, padding=1)
    m3 = RubiksShift3d.from_2d(m2, temporal_init="tsm")
    assert m3.stride == (1, 2, 2) and m3.padding == (0, 1, 1)
    torch.testing.assert_close(m3.shift.detach()[1:], m2.shift.detach())
    assert m3.shift.detach()[0, 0] == 1.0
    # with a zero temporal row the inflated module applies the 2D shift to every frame
    m3z = RubiksShift3d.from_2d(m2, temporal_init="zeros")
    x = torch.randn(2, 3, 16, 9, 9)
    frames = torch.stack([m2(x[:, t]) for t in range(3)], dim=1)
    torch.testing.assert_close(m3z(x), frames)
