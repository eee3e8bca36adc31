"""rubiks::block_forward, the CPU kernel of a whole RubiksNet block in the inference form, against the same
block run as modules (shift op, GEMMs, BN, ReLU), per variant, at odd sizes, strides and multi-tile frames."""
import pytest
import torch
from torch import nn

from rubiks_service.models import build_model
from rubiks_service.models.inference import InferenceRubiksBlock, inference_model
from rubiks_service.ops._extension import has_block_kernel

from .test_inference import _randomise

pytestmark = pytest.mark.skipif(not has_block_kernel(), reason="the extension has no block_forward kernel")

FRAMES = 3


def _blocks(model: nn.Module) -> list[InferenceRubiksBlock]:
    return [m for m in model.modules() if isinstance(m, InferenceRubiksBlock)]


def _trained_looking(variant: str, frames: int = FRAMES, spread: float = 2.7, **overrides) -> nn.Module:
    """nano with BN statistics far from the identity, shifts spread over several pixels and frames
    (within +-spread; some past the frame's edge), AQ attention spread so that converted channels shift
    both ways."""
    torch.manual_seed(0)
    model = build_model("nano", variant=variant, num_classes=5, num_frames=frames, **overrides)
    _randomise(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("shift"):
                p.uniform_(-spread, spread)
    return model


def _kernel_error(fused: InferenceRubiksBlock, modules: InferenceRubiksBlock, x: torch.Tensor) -> float:
    """Max error of the kernel block against its module form on x, relative to the output's max."""
    with torch.no_grad():
        expected = modules(x.clone())  # the module form accumulates into its input
        got = fused(x)
    assert got.shape == expected.shape
    return ((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item()


@pytest.fixture(scope="module", params=["rs", "rs-q", "rs-aq", "per-frame"])
def block_pairs(request):
    """(kernel form, module form) of every block of one variant."""
    variant, overrides = (("rs", {"temporal_shift": False}) if request.param == "per-frame"
                          else (request.param, {}))
    model = _trained_looking(variant, **overrides)
    fused, modules = inference_model(model), inference_model(model, block_kernel=False)
    pairs = list(zip(_blocks(fused), _blocks(modules)))
    assert all(f.kernel_args is not None for f, _ in pairs)  # every block of a tier without SE takes the kernel
    assert all(m.kernel_args is None for _, m in pairs)
    return pairs


# odd sizes; 61x45 spans several tiles of both passes at 16 channels; 2 clips per batch
@pytest.mark.parametrize("size", [(17, 23), (9, 30), (61, 45), (1, 1)])
def test_block_kernel_matches_the_modules(block_pairs, size):
    for fused, modules in block_pairs:
        err = _kernel_error(fused, modules, torch.randn(2 * FRAMES, fused.bn1.num_features, *size))
        assert err < 1e-5, (size, err)


# Large frames go frame by frame, `mid` a ring of the frames the temporal taps reach. 8 frames with shifts
# within +-1.5 (taps 2 frames either way: a 5-frame ring; the per-frame variant and RS-AQ's converted
# spatial shift: 1 frame) and 96x72 frames at nano's 16-128 channels give the first block 4 and 6 tiles
# a frame in its two passes, the later ones 2-21: the ring at 2 threads for the first block, at 1 thread
# for nearly all. Each kernel block against its modules, every clip of a 2-clip batch.
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("variant", ["rs", "rs-q", "rs-aq", "per-frame"])
def test_frame_by_frame_schedule_matches_the_modules(variant, threads):
    frames = 8
    name, overrides = ("rs", {"temporal_shift": False}) if variant == "per-frame" else (variant, {})
    model = _trained_looking(name, frames, 1.5, **overrides)
    fused, modules = inference_model(model), inference_model(model, block_kernel=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for f, m in zip(_blocks(fused), _blocks(modules)):
            err = _kernel_error(f, m, torch.randn(2 * frames, f.bn1.num_features, 96, 72))
            assert err < 1e-5, (variant, threads, err)
    finally:
        torch.set_num_threads(previous)


# Widths 7, 9, 11 give every remainder of the AVX2 GEMM's 6-row blocks (7..176 channels); 19x27 frames
# leave strips of 1-15 pixels. Both GEMM engines: tile_gemm (where the CPU has AVX2 + FMA) and the BLAS
# with separate bias/ReLU and residual passes (RUBIKS_BLOCK_GEMM=blas, the path of other CPUs).
@pytest.mark.parametrize("engine", ["default", "blas"])
@pytest.mark.parametrize("width", [7, 9, 11])
def test_both_gemm_engines_at_odd_widths(width, engine, monkeypatch):
    if engine == "blas":
        monkeypatch.setenv("RUBIKS_BLOCK_GEMM", "blas")
    model = _trained_looking("rs", width=width)
    fused, modules = inference_model(model), inference_model(model, block_kernel=False)
    for f, m in zip(_blocks(fused), _blocks(modules)):
        err = _kernel_error(f, m, torch.randn(2 * FRAMES, f.bn1.num_features, 19, 27))
        assert err < 1e-5, (width, engine, f.bn1.num_features, err)


def test_whole_model_and_fallbacks():
    model = _trained_looking("rs-aq")
    fused, modules = inference_model(model), inference_model(model, block_kernel=False)
    clips = torch.randn(2, FRAMES, 3, 40, 36)
    with torch.no_grad():
        expected = modules(clips)
        torch.testing.assert_close(fused(clips), expected, rtol=1e-4, atol=1e-5)
        # float64 is not the kernel's: the module path runs and still agrees
        torch.testing.assert_close(fused.double()(clips.double()), expected.double(), rtol=1e-4, atol=1e-5)
    # SE blocks have no kernel form (the gate needs the whole frame): they keep the modules
    se = inference_model(build_model("small", num_classes=5, num_frames=FRAMES))
    assert all(b.kernel_args is None for b in _blocks(se))


def test_block_op_rejects_bad_operands():
    block = _blocks(inference_model(_trained_looking("rs")))[1]
    x = torch.randn(2 * FRAMES, block.bn1.num_features, 8, 8)
    args = list(block.kernel_args)
    with pytest.raises(RuntimeError, match="whole number of clips"):
        torch.ops.rubiks.block_forward(x[:4], *args)
    with pytest.raises(RuntimeError, match="contiguous float32"):
        torch.ops.rubiks.block_forward(x.double(), *args)
    args[3] = args[3][:, :-1].contiguous()  # w2 of the wrong width
    with pytest.raises(RuntimeError, match="bad w2"):
        torch.ops.rubiks.block_forward(x, *args)
