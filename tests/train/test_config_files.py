"""Bad training configs and search spaces are rejected with a message naming the problem,
before any Ray or MLflow work starts."""
import pytest

from rubiks_service.train.config import ConfigError, load_config
from rubiks_service.tune.space import load_space

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
    from rubiks_service.train.model_factory import build_from_config

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
    from rubiks_service.train.model_factory import build_from_config

    path = write_yaml(tmp_path / "v.yaml", training_config(colour_data, str(tmp_path), model=model))
    names = {type(m).__name__ for m in build_from_config(load_config(path), num_classes=2).modules()}
    assert RubiksShift3d.__name__ not in names and (kind is None or kind in names)
    if kind is None:  # the per-frame TSM: no shift of any kind
        assert "_TemporalShiftFrames" not in names


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


def _space(tmp_path, base_yaml, **fields):
    tree = {"name": "s", "base": base_yaml, "search": {"aq.budget": {"grid": [0.25, 0.5]}}, **fields}
    return write_yaml(tmp_path / "space.yaml", tree)


def test_good_space_expands_grid_and_extra_trials(tmp_path, base_yaml):
    loaded = load_space(_space(tmp_path, base_yaml, search={
        "aq.budget": {"grid": [0.25, 0.5]}, "model.name": {"grid": ["rubiksnet-nano", "rubiksnet-micro"]},
        "optim.lr": {"loguniform": [0.001, 0.01]}},
        extra_trials=[{"name": "per-frame", "set": {"model.temporal_shift": False}}]))
    points = loaded.space.grid_points()
    assert len(points) == 5 and points[-1]["label"] == "per-frame" and points[-1]["kind"] is None
    assert [loaded.point_kind(p) for p in points] == ["rubiksnet"] * 4 + ["per-frame"]  # family from the config
    assert points[0]["label"] == "budget=0.25,rubiksnet-nano"  # the model's name stands alone in a label
    assert {p["set"]["aq.budget"] for p in points[:4]} == {0.25, 0.5}
    cfg = loaded.trial_config({**points[0]["set"], "optim.lr": 0.002})
    assert cfg.optim.lr == 0.002 and cfg.data.train_manifest.endswith("train.csv")


@pytest.mark.parametrize("fields, needle", [
    ({"search": {"optim.lrr": {"grid": [0.1]}}}, "unknown training-config key 'optim.lrr'"),
    ({"search": {"optim.lr": {"loguniform": [0.01, 0.001]}}}, "low < high"),
    ({"search": {"optim.lr": {"loguniform": [0.0, 0.1]}}}, "positive"),
    ({"search": {"optim.lr": {"grid": [0.1], "choice": [0.2]}}}, "exactly one"),
    ({"search": {"optim.lr": {"grid": []}}}, "at least one"),
    ({"search": {"model.variant": {"choice": ["rs", "bogus"]}}}, "model.variant"),
    ({"search": {"aq.budget": {"uniform": [0.1, 2.0]}}}, "aq.budget"),
    ({"extra_trials": [{"name": "b", "set": {"model.nope": 1}}]}, "model.nope"),
    ({"extra_trials": [{"name": "b", "kind": "cnn"}]}, "extra_trials.0.kind"),
    ({"max_concurrent_trials": 0}, "max_concurrent_trials"),
    ({"scheduler": {"type": "hyperband"}}, "scheduler.type"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_spaces_name_the_problem(tmp_path, base_yaml, fields, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        load_space(_space(tmp_path, base_yaml, **fields))


def test_space_with_a_bad_base(tmp_path):
    path = write_yaml(tmp_path / "space.yaml", {"name": "s", "base": str(tmp_path / "nope.yaml")})
    with pytest.raises(ConfigError, match="not found"):
        load_space(path)


def test_shipped_spaces_are_valid():
    import glob
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spaces = glob.glob(os.path.join(root, "tune_spaces", "*.yaml"))
    assert spaces
    for path in spaces:
        assert load_space(path).space.grid_points()


def _shipped_space(name):
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "tune_spaces", f"{name}.yaml")
    loaded = load_space(path)
    trials = [(p["label"], loaded.point_kind(p), loaded.trial_config(p["set"])) for p in loaded.space.grid_points()]
    return open(path).read(), trials


@pytest.mark.parametrize("name, mirrors", [
    ("frontier", "Fig. 1"), ("ablation-fixed-vs-learned", "Table 4"), ("ablation-variants", "Table 5"),
    ("ablation-lambda", "Eq. 9-10"), ("motion-demo", "Fig. 1"),
])
def test_comparison_spaces_mirror_the_paper(name, mirrors):
    """Each comparison space says at its top which part of the paper it mirrors, and holds the trials
    that make the comparison."""
    text, trials = _shipped_space(name)
    assert text.startswith("#") and mirrors in text.split("\nname:")[0]
    models = [t[2].model for t in trials]
    if name in ("frontier", "motion-demo"):
        kinds = [t[1] for t in trials]
        assert kinds.count("rubiksnet") >= 2 and kinds.count("tsm") >= 2 and kinds.count("per-frame") >= 1
        assert len(trials) >= 6 and {m.name for m in models} >= {"tsm-nano", "tsm-micro", "rubiksnet-nano"}
    elif name == "ablation-fixed-vs-learned":
        assert {(m.fixed_shifts, m.shift_init) for m in models} >= {(True, "uniform"), (False, "tsm-grid"),
                                                                   (False, "uniform")}
    elif name == "ablation-variants":
        pairs = {(m.variant, t[2].aq.budget if m.variant == "rs-aq" else None) for m, t in zip(models, trials)}
        assert pairs == {("rs", None), ("rs-q", None), ("rs-aq", 0.125), ("rs-aq", 0.25), ("rs-aq", 0.5)}
    else:
        got = {(m.temporal_factor, m.grad_norm_form, m.normalize_grad) for m in models}
        assert {(lam, form, True) for lam in (0.1, 1.0, 10.0, "auto") for form in ("release", "paper")} <= got
        assert any(not m.normalize_grad for m in models) and {m.variant for m in models} == {"rs"}


def test_shipped_job_specs_are_runnable():
    """Every jobs/*.yaml loads and its config or space (with the job's overrides) validates."""
    import glob
    import os

    from rubiks_service.queue.spec import load_job

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    specs = glob.glob(os.path.join(root, "jobs", "*.yaml"))
    assert len(specs) >= 2
    for path in specs:
        load_job(path)  # the spec, and the config or space it bundles, with the job's overrides
