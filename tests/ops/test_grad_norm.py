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


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_release_form_lands_on_the_unit_sphere(lam):
    """Release: (λ·gT, gH, gW)/‖·‖ — unit length whatever λ, λ only tilts the direction."""
    g = torch.randn(3, 50, dtype=torch.float64)
    out = normalize_shift_grad(g, lam, form="release")
    torch.testing.assert_close(out.norm(dim=0), torch.ones(50, dtype=torch.float64))
    # same direction as (λ gT, gH, gW)
    scaled = torch.cat([lam * g[:1], g[1:]])
    torch.testing.assert_close(out, scaled / scaled.norm(dim=0))


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_paper_form_lands_on_the_ellipsoid(lam):
    """Paper Eq. 10: Z² = λ gT² + gH² + gW², update (λ gT, gH, gW)/Z lies on dT²/λ + dH² + dW² = 1."""
    g = torch.randn(3, 50, dtype=torch.float64)
    out = normalize_shift_grad(g, lam, form="paper")
    on_ellipsoid = out[0].square() / lam + out[1].square() + out[2].square()
    torch.testing.assert_close(on_ellipsoid, torch.ones(50, dtype=torch.float64))
    # the temporal semi-axis is √λ: a purely temporal gradient moves time by exactly √λ
    pure_t = normalize_shift_grad(torch.tensor([[-3.0], [0.0], [0.0]], dtype=torch.float64), lam, form="paper")
    assert pure_t.flatten().tolist() == pytest.approx([-(lam**0.5), 0.0, 0.0])
    # while the release form moves it by 1 whatever λ
    assert normalize_shift_grad(torch.tensor([[-3.0], [0.0], [0.0]]), lam).flatten().tolist() == [-1.0, 0.0, 0.0]
    # a purely spatial gradient is unit length in both
    torch.testing.assert_close(normalize_shift_grad(torch.tensor([[0.0], [3.0], [4.0]]), lam, form="paper"),
                               torch.tensor([[0.0], [0.6], [0.8]]))


def test_forms_agree_at_lambda_one_and_differ_elsewhere():
    g = torch.randn(3, 20, dtype=torch.float64)
    torch.testing.assert_close(normalize_shift_grad(g, 1.0, "paper"), normalize_shift_grad(g, 1.0, "release"))
    assert not torch.allclose(normalize_shift_grad(g, 10.0, "paper"), normalize_shift_grad(g, 10.0, "release"))
    # both keep the temporal-only sign update and zero gradients
    for form in ("paper", "release"):
        assert normalize_shift_grad(torch.tensor([[-0.2], [5.0], [1.0]]), -1.0, form).flatten().tolist() == [-1, 0, 0]
        assert torch.equal(normalize_shift_grad(torch.zeros(3, 2), 10.0, form), torch.zeros(3, 2))


def test_bad_form():
    with pytest.raises(ValueError, match="form"):
        normalize_shift_grad(torch.zeros(3, 2), 1.0, form="ellipse")
    with pytest.raises(ValueError, match="grad_norm_form"):
        RubiksShift3d(4, grad_norm_form="ellipse")


@pytest.mark.parametrize("form", ["release", "paper"])
def test_auto_lambda_is_t_over_h_of_the_input(form):
    """λ = "auto" (the release's option) resolves to T / H of the tensor the module shifts."""
    x = torch.randn(2, 4, 6, 8, 5)  # T = 4, H = 8: λ = 0.5
    auto = RubiksShift3d(6, temporal_factor="auto", grad_norm_form=form)
    fixed = RubiksShift3d(6, temporal_factor=0.5, grad_norm_form=form, normalize_grad=True)
    raw = RubiksShift3d(6, normalize_grad=False)
    for m in (fixed, raw):
        m.shift.data.copy_(auto.shift.data)
    for m in (auto, fixed, raw):
        m(x).square().sum().backward()
    torch.testing.assert_close(auto.shift.grad, fixed.shift.grad)
    torch.testing.assert_close(auto.shift.grad, normalize_shift_grad(raw.shift.grad, 0.5, form))
    with pytest.raises(ValueError):
        RubiksShift3d(6, temporal_factor="fast")
