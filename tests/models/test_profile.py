"""Profiler: MACs within 3% of the paper's FLOPs, conv+FC MACs exact, AQ params as the release reports."""
import pytest

from rubiks_service.models import build_model, rubiksnet
from rubiks_service.models.profile import profile_model
from rubiks_service.ops.attention_shift import attention_shift_layers

PAPER = {  # tier: (paper GFLOPs = GMACs, conv+FC GMACs)
    "tiny": (3.9, 3.695),
    "small": (6.8, 6.506),
    "medium": (11.2, 10.926),
    "large": (15.8, 15.347),
}


@pytest.mark.parametrize("tier", PAPER)
def test_macs_match_paper(tier):
    paper, conv_fc = PAPER[tier]
    prof = profile_model(rubiksnet(tier))
    assert abs(prof.gmacs - paper) / paper < 0.03
    dense = (prof.macs_by_kind["conv"] + prof.macs_by_kind["linear"]) / 1e9
    assert dense == pytest.approx(conv_fc, abs=0.0015)
    assert sum(s["macs"] for s in prof.stages.values()) == prof.macs
    assert sum(s["params"] for s in prof.stages.values()) == prof.params


def test_quantized_shift_costs_no_macs():
    assert profile_model(rubiksnet("tiny", variant="rs-q"), size=64).macs_by_kind["shift"] == 0


def test_aq_inference_params_exclude_attention():
    model = rubiksnet("large", variant="rs-aq")
    prof = profile_model(model, size=32)
    assert prof.params == 8_563_854 and prof.inference_params == 8_563_854 - 39_096
    for layer in attention_shift_layers(model):
        layer.convert_()
    assert profile_model(model, size=32).macs_by_kind["attention_shift"] == 0


def test_latency_is_measured():
    prof = profile_model(build_model("tiny", num_frames=2), frames=2, size=32, latency=True, repeats=2)
    assert prof.latency_ms is not None and prof.latency_ms > 0
    assert prof.latency["form"] == "fastest" and prof.latency["repeats"] == 2


def test_measure_latency_standard_record_and_leaves_model_alone():
    import torch

    from rubiks_service.models.profile import LATENCY_THREADS, measure_latency

    model = build_model("nano", variant="rs-aq", num_classes=4, num_frames=4).train()
    before = torch.get_num_threads()
    rec = measure_latency(model, frames=4, size=32, batch=2, warmup=1, repeats=3)
    assert torch.get_num_threads() == before
    assert rec["threads"] == LATENCY_THREADS and rec["batch"] == 2 and rec["frames"] == 4 and rec["size"] == 32
    assert 0 < rec["latency_ms"] <= rec["median_ms"]
    assert model.training and not any(layer.converted for layer in attention_shift_layers(model))
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(model, frames=4, size=32, repeats=0)
