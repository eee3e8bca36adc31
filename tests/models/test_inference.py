"""The inference form: same logits as the trained model for every tier and variant, BN really folded."""
import copy

import pytest
import torch
from torch import nn

from rubiks_service.models import TIERS, TSM_NAMES, VARIANTS, build_model
from rubiks_service.models.inference import fastest_form, fold_batchnorm, inference_model
from rubiks_service.ops.attention_shift import attention_shift_layers, set_temperature

FRAMES, SIZE, CLASSES = 4, 32, 10


def _randomise(model: nn.Module) -> nn.Module:
    """Trained-looking state: BN statistics and affines far from the identity, spread AQ attention."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.3)
                m.running_var.uniform_(0.3, 2.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        for layer in attention_shift_layers(model):
            layer.weight.normal_(0.0, 1.0)
    return model


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _check_parity(model: nn.Module, reference: nn.Module, batch: int = 2) -> nn.Module:
    state = copy.deepcopy(model.state_dict())
    fast = inference_model(model)
    clips = torch.randn(batch, FRAMES, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = reference.eval()(clips)
        got = fast(clips)
    assert not fast.training
    assert got.shape == expected.shape == (batch, CLASSES)
    assert _rel_err(got, expected) < 1e-4
    # the input model is untouched: same weights, AQ still learnable, still in train mode
    assert model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    assert all(not layer.converted for layer in attention_shift_layers(model))
    assert not any(p.requires_grad for p in fast.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) and _follows_conv(fast, m) for m in fast.modules())
    return fast


def _follows_conv(model: nn.Module, bn: nn.Module) -> bool:
    """Whether a BatchNorm is a TSM/RubiksNet 'bn after conv' (bn2 in RubiksNet blocks, every TSM BN)."""
    for name, m in model.named_modules():
        if m is bn:
            leaf = name.rsplit(".", 1)[-1]
            return leaf == "bn2" or (not name.startswith("backbone") and leaf != "bn_last")
    return False


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("tier", list(TIERS))
def test_rubiksnet_inference_form_matches(tier, variant):
    model = _randomise(build_model(tier, variant=variant, num_classes=CLASSES, num_frames=FRAMES))
    model.train()
    reference = copy.deepcopy(model)
    for layer in attention_shift_layers(reference):  # RS-AQ is exact after hard-max conversion
        layer.convert_()
    _check_parity(model, reference)


@pytest.mark.parametrize("name", TSM_NAMES)
def test_tsm_inference_form_matches(name):
    model = _randomise(build_model(name, num_classes=CLASSES, num_frames=FRAMES)).train()
    _check_parity(model, copy.deepcopy(model), batch=1)


@pytest.mark.parametrize("name", ["tsm-nano", "rubiksnet-nano"])
def test_the_fastest_form_latency_times_is_exact(name):
    """What latency figures time: the inference form, TSM's with channels-last weights."""
    model = _randomise(build_model(name, num_classes=CLASSES, num_frames=FRAMES)).eval()
    fast = fastest_form(model)
    clips = torch.randn(2, FRAMES, 3, SIZE, SIZE)
    with torch.no_grad():
        assert _rel_err(fast(clips), model(clips)) < 1e-4
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    channels_last = [c.weight.is_contiguous(memory_format=torch.channels_last) and not c.weight.is_contiguous()
                     for c in convs if c.weight.shape[-1] > 1]
    assert channels_last and all(channels_last) == name.startswith("tsm")


def test_annealed_aq_model_matches_without_conversion():
    """At the end of annealing the attention is one-hot: the converted form equals the trained model as is."""
    model = _randomise(build_model("micro", variant="rs-aq", num_classes=CLASSES, num_frames=FRAMES))
    with torch.no_grad():
        for layer in attention_shift_layers(model):
            pick = torch.randint(0, layer.weight.shape[1], (layer.weight.shape[0],))
            layer.weight.zero_().scatter_(1, pick[:, None], 1.0)
    set_temperature(model, 1e-3)
    model.train()
    _check_parity(model, copy.deepcopy(model))


def test_per_frame_and_fixed_shift_variants():
    for overrides in ({"temporal_shift": False}, {"fixed_shifts": True}, {"variant": "rs-q", "temporal_shift": False}):
        model = _randomise(build_model("nano", num_classes=CLASSES, num_frames=FRAMES, **overrides)).train()
        _check_parity(model, copy.deepcopy(model))


def test_fold_batchnorm_with_conv_bias_and_strides():
    conv = nn.Conv2d(5, 7, 3, stride=2, padding=1, bias=True)
    bn = _randomise(nn.Sequential(nn.BatchNorm2d(7)))[0].eval()
    x = torch.randn(3, 5, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(conv, bn)(x), bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_small_frames_take_the_library_conv_and_match():
    """Frames under GEMM_MIN_PIXELS (7x7 in layer4 at 224^2) use F.conv2d; both paths, strided too."""
    from rubiks_service.models.inference import GEMM_MIN_PIXELS, Conv1x1

    for size, stride in ((7, 1), (16, 1), (28, 2), (13, 2)):
        conv = nn.Conv2d(12, 20, 1, stride=stride, bias=True)
        x, res = torch.randn(3, 12, size, size), torch.randn(3, 20, (size - 1) // stride + 1, (size - 1) // stride + 1)
        fast = Conv1x1(conv)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), conv(x), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast(x, residual=res.clone()), conv(x) + res, rtol=1e-5, atol=1e-5)
    assert 7 * 7 < GEMM_MIN_PIXELS <= 14 * 14


def test_rejects_other_modules():
    with pytest.raises(TypeError, match="RubiksNet or TSM"):
        inference_model(nn.Linear(2, 2))
