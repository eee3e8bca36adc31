"""TSM baselines: parameter counts and MACs, the shift equals the shift op with integer shifts."""
import pytest
import torch

from rubiks_service.models import build_model, temporal_shift
from rubiks_service.models.profile import profile_model
from rubiks_service.ops import rubiks_shift3d


def test_tsm_shift_is_the_shift_op_with_integer_shifts():
    x = torch.randn(2, 8, 24, 5, 5)
    fold = 24 // 8
    shift = torch.zeros(3, 24)
    shift[0, :fold], shift[0, fold : 2 * fold] = 1.0, -1.0
    torch.testing.assert_close(temporal_shift(x), rubiks_shift3d(x, shift), atol=0, rtol=0)


@pytest.mark.parametrize("name,params,gmacs", [("tsm-r50", 23.87e6, 33.0), ("tsm-r18", 11.3e6, 14.5)])
def test_known_figures(name, params, gmacs):
    prof = profile_model(build_model(name))  # 174 classes, 8 frames at 224^2
    assert abs(prof.params - params) / params < 0.01
    assert abs(prof.gmacs - gmacs) / gmacs < 0.03


def test_per_frame_baseline_has_no_temporal_mixing():
    model = build_model("tsm-r18", num_classes=4, num_frames=4, temporal_shift=False).eval()
    clips = torch.randn(1, 4, 3, 32, 32)
    shuffled = clips[:, [2, 0, 3, 1]]
    with torch.no_grad():  # frame order cannot matter without temporal shift
        torch.testing.assert_close(model(clips), model(shuffled), atol=1e-5, rtol=1e-5)
        shifted = build_model("tsm-r18", num_classes=4, num_frames=4).eval()
        assert not torch.allclose(shifted(clips), shifted(shuffled), atol=1e-5)


def test_forward_backward():
    model = build_model("tsm-r50", num_classes=5, num_frames=2)
    model(torch.randn(2, 2, 3, 32, 32)).sum().backward()


@pytest.mark.parametrize("tsm, rubiks", [("tsm-nano", "rubiksnet-nano"), ("tsm-micro", "rubiksnet-micro")])
def test_demo_widths_match_rubiksnet_macs(tsm, rubiks):
    """The CPU-demo TSMs sit at their RubiksNet tier's MACs (within 5% at 48², 10% at 224²) with
    TSM-R18's block rule: BasicBlocks whose residual branch shifts 1/8 of the channels each way."""
    from rubiks_service.models.tsm import BasicBlock

    for size, tol in ((48, 0.05), (224, 0.10)):
        a = profile_model(build_model(tsm, num_classes=8), frames=8, size=size).macs
        b = profile_model(build_model(rubiks, num_classes=8), frames=8, size=size).macs
        assert abs(a - b) / b < tol, (tsm, size, a, b)
    model = build_model(tsm, num_classes=8, num_frames=4)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert blocks and all(b.conv1.kernel_size == b.conv2.kernel_size == (3, 3) for b in blocks)
    assert all(b.shift.fold_div == 8 and b.shift.num_frames == 4 for b in blocks)
    model(torch.randn(2, 4, 3, 48, 48)).sum().backward()


def test_demo_tsm_per_frame_and_unknown_names():
    model = build_model("tsm-nano", num_classes=3, num_frames=4, temporal_shift=False).eval()
    clips = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clips), model(clips[:, [3, 1, 0, 2]]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="tsm-nano"):
        build_model("tsm-pico")
