"""The model list (`models.MODELS`): every name builds through `build_model` and runs on every
device; names are looked up, not parsed."""
import pytest
import torch

from rubiks_service.models import MODEL_NAMES, MODELS, TSM_NAMES, build_model, model_entry
from tests.helpers.devices import DEVICES


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_builds_and_runs(name, device):
    model = build_model(name, num_classes=5, num_frames=2).to(device)
    logits = model(torch.randn(2, 2, 3, 32, 32, device=device))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert model.num_frames == 2


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_takes_its_family_options(name):
    """A family's options are the keywords its builder takes (TSM: dropout and temporal_shift only)."""
    entry = MODELS[name]
    model = build_model(name, num_classes=3, num_frames=2, dropout=0.1, temporal_shift=False)
    assert model.cfg.dropout == 0.1 and not model.cfg.temporal_shift
    assert ("variant" in entry.options) == (entry.family == "rubiksnet") == (name not in TSM_NAMES)


def test_names_are_looked_up_in_any_case_and_tiers_alone():
    assert model_entry("RubiksNet-Nano") is MODELS["rubiksnet-nano"] and model_entry("tiny") is MODELS["rubiksnet-tiny"]
    assert model_entry("TSM-R18") is MODELS["tsm-r18"]
    for bad in ("tsm-r101", "rubiksnet-", "r18", "tsm-tiny"):
        with pytest.raises(ValueError, match="unknown model"):
            build_model(bad)
