"""RS-AQ: attention over integer temporal shifts, budget loss, annealing, hard-max conversion."""
import pytest
import torch

from rubiks_service.models import rubiksnet
from rubiks_service.ops import rubiks_shift3d
from rubiks_service.ops.attention_shift import (
    TemporalAttentionShift,
    attention_shift_layers,
    budget_loss,
    convert_attention_shifts,
    exponential_temperature,
    realised_budget,
    set_temperature,
)


def test_init_and_attention_rows_sum_to_one():
    layer = TemporalAttentionShift(16)
    assert layer.weight.min() >= 0.0 and layer.weight.max() <= 1.0  # U(0, 1), the release's init
    torch.testing.assert_close(layer.attention().sum(dim=1), torch.ones(16))


def test_attention_is_standardised_per_channel():
    """Each channel's softmax sees its own logits over their own std (the release's form): scaling or
    shifting one channel's logits leaves its attention, and every other channel's, unchanged; at the
    start temperature no channel is one-hot yet."""
    layer = TemporalAttentionShift(4)
    before = layer.attention().detach().clone()
    with torch.no_grad():
        layer.weight[0] = 10 * layer.weight[0] + 3
    torch.testing.assert_close(layer.attention(), before, rtol=1e-4, atol=1e-5)
    assert (before.max(dim=1).values < 0.9).all()


def test_forward_is_attention_weighted_integer_shifts():
    layer = TemporalAttentionShift(6)
    x = torch.randn(2, 5, 6, 3, 3)
    attn = layer.attention()
    expected = sum(
        attn[:, j].view(1, 1, -1, 1, 1) * rubiks_shift3d(x, torch.stack([torch.full((6,), float(s)), torch.zeros(6), torch.zeros(6)]))
        for j, s in enumerate((-1, 0, 1))
    )
    torch.testing.assert_close(layer(x), expected)


def test_low_temperature_makes_attention_one_hot():
    layer = TemporalAttentionShift(8)
    layer.T.fill_(1e-3)
    assert (layer.attention().max(dim=1).values > 0.999).all()


def test_exponential_annealing_schedule():
    assert exponential_temperature(0, 40) == pytest.approx(2.0)
    assert exponential_temperature(40, 40) == pytest.approx(1e-3)
    assert exponential_temperature(20, 40) == pytest.approx((2.0 * 1e-3) ** 0.5)
    assert exponential_temperature(80, 40) == pytest.approx(1e-3)


def test_budget_loss_value_and_gradient():
    layers = [TemporalAttentionShift(4), TemporalAttentionShift(4)]
    with torch.no_grad():
        layers[0].weight.copy_(torch.tensor([[0.0, 9.0, 0.0]] * 4))  # mostly no shift
        layers[1].weight.copy_(torch.tensor([[9.0, 0.0, 0.0]] * 4))  # mostly shift -1
    fractions = torch.stack([layer.nonzero_fraction() for layer in layers])
    loss = budget_loss(layers, budget=0.25)
    torch.testing.assert_close(loss, (fractions.mean() - 0.25).abs())
    loss.backward()
    assert all(layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0 for layer in layers)
    with pytest.raises(ValueError, match="budget"):
        budget_loss(layers, budget=1.5)


def test_budget_loss_training_moves_the_budget():
    # at the start temperature (2.0) the std-normalised softmax cannot concentrate enough
    # to reach a 10% budget; partway through annealing it can
    layers = [TemporalAttentionShift(32, temperature=0.3) for _ in range(3)]
    opt = torch.optim.Adam([p for layer in layers for p in layer.parameters()], lr=0.05)
    start = torch.stack([layer.nonzero_fraction() for layer in layers]).mean().item()
    for _ in range(300):
        opt.zero_grad()
        budget_loss(layers, budget=0.1).backward()
        opt.step()
    end = torch.stack([layer.nonzero_fraction() for layer in layers]).mean().item()
    assert abs(end - 0.1) < abs(start - 0.1) and abs(end - 0.1) < 0.05


def test_converted_model_matches_annealed_model():
    torch.manual_seed(1)
    model = rubiksnet("tiny", variant="rs-aq", num_classes=7, num_frames=4).eval()
    for layer in attention_shift_layers(model):  # spread the logits so the arg-max is clear
        layer.weight.data.normal_(0, 1)
    set_temperature(model, 1e-4)
    clips = torch.randn(3, 4, 3, 32, 32)
    with torch.no_grad():
        annealed = model(clips)
        layers = convert_attention_shifts(model)
        converted = model(clips)
        hard = [layer.hard_shift.clone() for layer in layers]
        assert convert_attention_shifts(model) == layers  # converting again changes nothing
        assert all(torch.equal(a, b.hard_shift) for a, b in zip(hard, layers))
    assert layers and all(layer.converted for layer in layers)
    torch.testing.assert_close(converted, annealed, atol=1e-4, rtol=1e-4)
    assert torch.equal(converted.argmax(1), annealed.argmax(1))
    assert 0.0 <= realised_budget(layers) <= 1.0


def test_converted_state_dict_round_trip():
    model = rubiksnet("tiny", variant="rs-aq", num_frames=4)
    for layer in attention_shift_layers(model):
        layer.convert_()
    fresh = rubiksnet("tiny", variant="rs-aq", num_frames=4)
    fresh.load_state_dict(model.state_dict(), strict=True)
    for a, b in zip(attention_shift_layers(model), attention_shift_layers(fresh)):
        assert b.converted and torch.equal(a.hard_shift, b.hard_shift)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(N, T, 4, H, W\)"):
        TemporalAttentionShift(4)(torch.randn(2, 3, 5, 4, 4))
