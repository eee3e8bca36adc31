"""Training configs: bad values and combinations are rejected with a message naming the field,
before any Ray or MLflow work starts."""
import pytest

from rubiks_service.train.config import ConfigError, load_config

from tests.helpers.training import training_config, write_yaml


@pytest.fixture
def base_yaml(tmp_path, colour_data):
    return write_yaml(tmp_path / "base.yaml", training_config(colour_data, str(tmp_path / "runs")))


def test_good_config_and_overrides(base_yaml):
    cfg = load_config(base_yaml, ["optim.lr=0.05", "model.variant=rs-aq", "aq.budget=0.5"])
    assert (cfg.optim.lr, cfg.model.variant, cfg.aq.budget) == (0.05, "rs-aq", 0.5)


@pytest.mark.parametrize("mutate, needle", [
    ({"optim": {"lr": -1}}, "optim.lr"),
    ({"optim": {"epochs": 2, "lr_steps": [3]}}, "lr_steps"),
    ({"model": {"variant": "rs-zz"}}, "model.variant"),
    ({"model": {"colour": "red"}}, "model.colour"),
    ({"scaling": {"amp": "bf16"}}, "use_gpu"),
    ({"data": {"batch_size": "eight"}}, "data.batch_size"),
    ({"aq": {"budget": 1.5}}, "aq.budget"),
    ({"seed": -1}, "seed"),
    ({"data": {"shuffle_buffer": 0}}, "data.shuffle_buffer"),
])
def test_bad_values_name_the_field(tmp_path, colour_data, mutate, needle):
    path = write_yaml(tmp_path / "bad.yaml", training_config(colour_data, str(tmp_path), **mutate))
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize("model, needle", [
    ({"name": "rubiksnet-huge"}, "model.name"),
    ({"shift_init": "diagonal"}, "model.shift_init"),
    ({"temporal_factor": "fast"}, "model.temporal_factor"),
    ({"grad_norm_form": "sphere"}, "model.grad_norm_form"),
    ({"fixed_shifts": "yes please"}, "model.fixed_shifts"),
    ({"variant": "rs-aq", "fixed_shifts": True}, "model.fixed_shifts"),
    ({"variant": "rs-aq", "temporal_factor": 0.1}, "model.temporal_factor"),
    ({"variant": "rs-aq", "temporal_shift": False}, "model.temporal_shift"),
    ({"fixed_shifts": True, "temporal_shift": False}, "model.fixed_shifts"),
    ({"fixed_shifts": True, "shift_init": "tsm"}, "model.shift_init"),
    ({"normalize_grad": False, "temporal_factor": 10}, "model.temporal_factor"),
    ({"normalize_grad": False, "grad_norm_form": "paper"}, "model.grad_norm_form"),
    ({"name": "tsm-nano", "variant": "rs-aq"}, "model.variant"),
    ({"name": "tsm-micro", "fixed_shifts": True}, "model.fixed_shifts"),
])
def test_bad_ablations_name_the_field(tmp_path, colour_data, model, needle):
    path = write_yaml(tmp_path / "bad.yaml", training_config(colour_data, str(tmp_path), model=model))
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(path)


def test_missing_data_section(tmp_path):
    path = write_yaml(tmp_path / "nodata.yaml", {"name": "x"})
    with pytest.raises(ConfigError, match="data"):
        load_config(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(tmp_path / "broken.yaml"))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(tmp_path / "list.yaml"))


def test_bad_override(base_yaml):
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(base_yaml, ["optim.lr"])
    with pytest.raises(ConfigError, match="optim.nesterov"):
        load_config(base_yaml, ["optim.nesterov=true"])


def test_model_choices_are_the_models_own():
    """One list of each: the config's choices are the tuples of the models, ops and clip modes that implement them."""
    from typing import get_args

    from rubiks_service.data.clip_spec import ClipMode
    from rubiks_service.models import MODELS, VARIANTS
    from rubiks_service.ops.grad_norm import GRAD_NORM_FORMS
    from rubiks_service.ops.modules import SHIFT_INITS
    from rubiks_service.train.config import EVAL_PROTOCOLS, ModelConfig, TrainConfig

    fields = ModelConfig.model_fields
    assert get_args(fields["variant"].annotation) == VARIANTS
    assert get_args(fields["grad_norm_form"].annotation) == GRAD_NORM_FORMS
    assert get_args(fields["shift_init"].annotation) == SHIFT_INITS
    assert all(set(entry.options) < set(fields) for entry in MODELS.values())
    assert get_args(get_args(TrainConfig.model_fields["eval_protocols"].annotation)[0]) == EVAL_PROTOCOLS
    assert {ClipMode(p) for p in EVAL_PROTOCOLS} == set(ClipMode) - {ClipMode.TRAIN}


def test_the_typed_config_travels_as_it_is(base_yaml):
    """Train workers get the TrainConfig object itself (Ray pickles it): nothing lost on the way."""
    import pickle

    cfg = load_config(base_yaml, ["model.temporal_factor=auto", "data.flip_pairs={0: 1, 1: 0}"])
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.model.temporal_factor == "auto" and again.data.flip_pairs == {0: 1, 1: 0}


def test_relative_paths_are_taken_beside_the_yaml(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = write_yaml(folder / "rel.yaml", {"data": {"train_manifest": "../data/train.csv",
                                                     "val_manifest": "val.csv", "data_root": "videos"},
                                            "storage_path": "../runs"})
    monkeypatch.chdir(tmp_path.parent)  # the working directory does not matter
    cfg = load_config(path)
    assert (cfg.data.train_manifest, cfg.data.val_manifest, cfg.data.data_root, cfg.storage_path) == (
        str(tmp_path / "data" / "train.csv"), str(folder / "val.csv"), str(folder / "videos"), str(tmp_path / "runs"))
