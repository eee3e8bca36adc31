"""RubiksNet tiers: exact release parameter counts and state-dict layout, forward/backward."""
import json
import os

import pytest
import torch

from rubiks_service.models import MODELS, VARIANTS, build_model, rubiksnet
from tests.helpers.reference import SHAPES_FILE

RELEASE_PARAMS = {"tiny": 1_898_760, "small": 3_597_366, "medium": 6_185_622, "large": 8_538_294}


@pytest.fixture(scope="module")
def release_shapes():
    if not os.path.exists(SHAPES_FILE):
        pytest.skip("shared/reference/official_state_dict_shapes.json not beside the checkout")
    with open(SHAPES_FILE) as f:
        return json.load(f)


@pytest.mark.parametrize("tier,count", RELEASE_PARAMS.items())
@pytest.mark.parametrize("variant", ["rs", "rs-q"])
def test_parameter_counts_match_release(tier, count, variant):
    model = rubiksnet(tier, variant=variant)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize(
    "tier,variant,key",
    [("tiny", "rs", "tiny/rubiks3d"), ("small", "rs", "small/rubiks3d"), ("medium", "rs", "medium/rubiks3d"),
     ("large", "rs", "large/rubiks3d"), ("large", "rs-aq", "large/rubiks3d-aq")],
)
def test_state_dict_matches_release_shapes(release_shapes, tier, variant, key):
    ours = {k: list(v.shape) for k, v in rubiksnet(tier, variant=variant).state_dict().items()}
    assert ours == release_shapes[key]


def test_aq_parameter_count():
    model = rubiksnet("large", variant="rs-aq")
    assert sum(p.numel() for p in model.parameters()) == 8_563_854  # the release's AQ checkpoint


@pytest.mark.parametrize("name", [n for n, entry in MODELS.items() if entry.family == "rubiksnet"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_small_resolution(name, variant):
    if name in ("rubiksnet-medium", "rubiksnet-large") and variant != "rs":
        pytest.skip("deep tiers: one variant is enough at CPU test speed")
    model = build_model(name, num_classes=10, num_frames=4, variant=variant)
    clips = torch.randn(2, 4, 3, 32, 32)
    logits = model(clips)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.logsumexp(dim=1).mean().backward()
    shift_grads = [p.grad for n, p in model.named_parameters() if n.endswith("shift")]
    assert shift_grads and all(g is not None and torch.isfinite(g).all() for g in shift_grads)


def test_logits_are_frame_average():
    model = rubiksnet("tiny", num_classes=5, num_frames=2, dropout=0.3).eval()
    clips = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        feats = model.backbone(clips.flatten(0, 1))
        per_frame = model.new_fc(feats)
        torch.testing.assert_close(model(clips), per_frame.mean(dim=0, keepdim=True))


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="unknown RubiksNet tier"):
        rubiksnet("huge")
    with pytest.raises(ValueError, match="unknown RubiksNet variant"):
        rubiksnet("tiny", variant="rs-x")
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet-3d")
    with pytest.raises(ValueError, match=r"\(N, 8, 3, H, W\)"):
        rubiksnet("tiny")(torch.randn(1, 4, 3, 32, 32))


def test_fixed_shift_ablation():
    model = rubiksnet("tiny", fixed_shifts=True, num_frames=4, num_classes=3)
    shift = model.backbone.layer1[0].as3.rubiks3d.shift
    assert not shift.requires_grad
    c = shift.shape[1]  # 54 channels: 6 per 3x3 offset, 6 each way in time
    assert torch.equal(shift[0, :6], torch.ones(6)) and torch.equal(shift[0, 6:12], -torch.ones(6))
    offsets = {(int(h), int(w)) for h, w in zip(shift[1], shift[2])}
    assert offsets == {(h, w) for h in (-1, 0, 1) for w in (-1, 0, 1)} and c == 54
    model(torch.randn(1, 4, 3, 32, 32)).sum().backward()
    assert shift.grad is None
    with pytest.raises(ValueError, match="fixed_shifts"):
        rubiksnet("tiny", variant="rs-aq", fixed_shifts=True)


def test_per_frame_baseline_ignores_frame_order():
    model = rubiksnet("nano", temporal_shift=False, num_classes=4, num_frames=4).eval()
    clips = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clips), model(clips[:, [3, 1, 0, 2]]), atol=1e-5, rtol=1e-5)
    temporal = rubiksnet("nano", num_classes=4, num_frames=4).eval()
    with torch.no_grad():
        assert not torch.allclose(temporal(clips), temporal(clips[:, [3, 1, 0, 2]]), atol=1e-4)
