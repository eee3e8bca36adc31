"""build_from_config: every model ablation a config names reaches the built model, and every model
name builds from a config (no family branching in train/)."""
import pytest

from rubiks_service.models import MODEL_NAMES, MODELS, RubiksNet, TSMResNet
from rubiks_service.train.config import TrainConfig, load_config
from rubiks_service.train.model_factory import build_from_config
from tests.helpers.training import training_config, write_yaml


@pytest.mark.parametrize("model, check", [
    ({"fixed_shifts": True}, lambda s: not s.shift.requires_grad and s.shift[0, 0] == 1.0),
    ({"shift_init": "grid"}, lambda s: s.shift.requires_grad and set(s.shift[1].tolist()) <= {-1.0, 0.0, 1.0}),
    ({"shift_init": "tsm-grid"}, lambda s: s.shift.requires_grad and s.shift[0, 0] == 1.0),
    ({"temporal_factor": 10.0, "grad_norm_form": "paper"},
     lambda s: (s.temporal_factor, s.grad_norm_form) == (10.0, "paper")),
    ({"temporal_factor": "auto"}, lambda s: s.temporal_factor == "auto" and s.grad_norm_form == "release"),
    ({"normalize_grad": False}, lambda s: not s.normalize_grad),
    ({"variant": "rs-q"}, lambda s: s.quantize),
])
def test_every_ablation_reaches_the_model(tmp_path, colour_data, model, check):
    """A config key per ablation, and the built model's first 3D shift shows it."""
    from rubiks_service.ops import RubiksShift3d

    path = write_yaml(tmp_path / "a.yaml", training_config(colour_data, str(tmp_path), model=model))
    net = build_from_config(load_config(path), num_classes=2)
    shift = next(m for m in net.modules() if isinstance(m, RubiksShift3d))
    assert check(shift)


@pytest.mark.parametrize("model, kind", [
    ({"variant": "rs-aq"}, "TemporalAttentionShift"),
    ({"temporal_shift": False}, "_FrameShift"),
    ({"name": "tsm-nano"}, "_TemporalShiftFrames"),
    ({"name": "tsm-micro", "temporal_shift": False}, None),
])
def test_variants_and_baselines_build(tmp_path, colour_data, model, kind):
    from rubiks_service.ops import RubiksShift3d

    path = write_yaml(tmp_path / "v.yaml", training_config(colour_data, str(tmp_path), model=model))
    names = {type(m).__name__ for m in build_from_config(load_config(path), num_classes=2).modules()}
    assert RubiksShift3d.__name__ not in names and (kind is None or kind in names)
    if kind is None:  # the per-frame TSM: no shift of any kind
        assert "_TemporalShiftFrames" not in names


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_name_builds_from_a_config(name):
    """The config passes exactly its family's options to build_model (TSM takes no shift settings)."""
    cfg = TrainConfig(model={"name": name}, data={"train_manifest": "t.csv", "val_manifest": "v.csv", "segments": 2})
    assert set(cfg.model.builder_kwargs()) == set(MODELS[name].options)
    model = build_from_config(cfg, num_classes=3)
    assert model.num_frames == 2 and isinstance(model, {"rubiksnet": RubiksNet, "tsm": TSMResNet}[cfg.model.family])
