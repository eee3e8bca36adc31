"""Search spaces: grids expand into trial points, every trial a space can produce is validated
before anything starts, and the shipped spaces mirror the paper's comparisons."""
import glob
import os

import pytest

from rubiks_service.config_files import ConfigError
from rubiks_service.tune.space import load_space
from tests.helpers.reference import REPO_ROOT
from tests.helpers.training import training_config, write_yaml


@pytest.fixture
def base_yaml(tmp_path, colour_data):
    return write_yaml(tmp_path / "base.yaml", training_config(colour_data, str(tmp_path / "runs")))


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
    ({"seeds": []}, "seeds"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"seeds": [0, 1], "search": {"optim.lr": {"loguniform": [0.001, 0.01]}}}, "drawn anew"),
    ({"seeds": [0, 1], "set": {"seed": 3}}, "leave `seed` out"),
    ({"latency": {"reference": "resnet-9000"}}, "latency.reference"),
    ({"latency": {"rounds": 0}}, "latency.rounds"),
])
def test_bad_spaces_name_the_problem(tmp_path, base_yaml, fields, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        load_space(_space(tmp_path, base_yaml, **fields))


def test_space_with_a_bad_base(tmp_path):
    path = write_yaml(tmp_path / "space.yaml", {"name": "s", "base": str(tmp_path / "nope.yaml")})
    with pytest.raises(ConfigError, match="not found"):
        load_space(path)


def test_shipped_spaces_are_valid():
    spaces = glob.glob(os.path.join(REPO_ROOT, "tune_spaces", "*.yaml"))
    assert spaces
    for path in spaces:
        assert load_space(path).space.grid_points()


def _shipped_space(name):
    path = os.path.join(REPO_ROOT, "tune_spaces", f"{name}.yaml")
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
        assert kinds.count("rubiksnet") >= 2 and kinds.count("tsm") >= 2
        if name == "frontier":  # the main job leaves the per-frame point to the larger comparison (its time)
            assert kinds.count("per-frame") >= 1
        want = {"tsm-nano", "rubiksnet-nano"} | ({"tsm-micro"} if name == "frontier" else set())
        assert len(trials) >= 6 and {m.name for m in models} >= want
        if name == "motion-demo":  # the main job compares replicated points: 3 seeds each
            assert len(load_space(os.path.join(REPO_ROOT, "tune_spaces", f"{name}.yaml")).space.seeds) >= 3
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


def test_seeds_replicate_every_point_seed_by_seed(tmp_path, base_yaml):
    """`seeds`: each point (grid and extra) once per seed, the seed set on the trial, the point's label
    shared by its replicates; seed-major order, so an interrupted sweep has every point at fewer seeds.
    A space without `seeds` keeps its points as they were (one trial each, the config's seed)."""
    loaded = load_space(_space(tmp_path, base_yaml, seeds=[5, 7],
                               extra_trials=[{"name": "per-frame", "set": {"model.temporal_shift": False}}]))
    trials = loaded.space.grid_points()
    assert [(t["point"], t["seed"]) for t in trials] == [
        ("budget=0.25", 5), ("budget=0.5", 5), ("per-frame", 5), ("budget=0.25", 7), ("budget=0.5", 7), ("per-frame", 7)]
    assert all(loaded.trial_config(t["set"]).seed == t["seed"] for t in trials)
    plain = load_space(_space(tmp_path, base_yaml)).space.grid_points()
    assert [(t["point"], t["seed"]) for t in plain] == [("budget=0.25", None), ("budget=0.5", None)]


def test_relative_paths_in_a_space_are_taken_from_its_folder(tmp_path, base_yaml, monkeypatch):
    """A path the space sets (frame shards, manifests) is read from the space file's folder, not from the
    working directory of whatever process runs the trial."""
    (tmp_path / "spaces").mkdir()
    path = write_yaml(tmp_path / "spaces" / "space.yaml", {
        "name": "s", "base": base_yaml, "set": {"data.train_frames": "../frames/train", "data.val_frames": "../frames/val"}})
    monkeypatch.chdir(tmp_path)
    loaded = load_space(os.path.relpath(path))  # as a user names it, from the folder they are in
    monkeypatch.chdir("/")  # where a trial's actor runs
    cfg = loaded.trial_config({})
    assert cfg.data.train_frames == str(tmp_path / "frames" / "train")
    assert cfg.data.val_frames == str(tmp_path / "frames" / "val")


def test_start_from_names_a_first_stage_point_and_pairs_trials_by_seed(tmp_path, base_yaml):
    """`start_from`: a second stage of trials, each paired with the finished trial of the same seed of
    the point it names; a replicate whose start did not finish is skipped. Unknown or chained starts,
    sampled keys and a second init_from are refused in one line."""
    from rubiks_service.tune.sweep import started_points

    loaded = load_space(_space(tmp_path, base_yaml, seeds=[0, 1], extra_trials=[
        {"name": "aq", "set": {"model.variant": "rs-aq"}, "start_from": "budget=0.5"}]))
    assert loaded.space.stages == 2
    assert [(t["point"], t["seed"]) for t in loaded.space.grid_points(stage=2)] == [("aq", 0), ("aq", 1)]
    assert all(t["point"] != "aq" for t in loaded.space.grid_points(stage=1))
    finished = [{"point": "budget=0.5", "seed": "1", "run_id": "r1"}, {"point": "budget=0.25", "seed": "0", "run_id": "x"}]
    started, skipped = started_points(loaded.space.grid_points(stage=2), finished)
    assert [t["set"]["model.init_from"] for t in started] == ["runs:/r1/model"]
    assert [t["seed"] for t in skipped] == [0]
    # without `seeds` each point has one trial (its run's seed is the config's): paired by point
    plain = load_space(_space(tmp_path, base_yaml, extra_trials=[
        {"name": "aq", "set": {"model.variant": "rs-aq"}, "start_from": "budget=0.5"}]))
    started, skipped = started_points(plain.space.grid_points(stage=2), [{"point": "budget=0.5", "seed": "0", "run_id": "r"}])
    assert [t["set"]["model.init_from"] for t in started] == ["runs:/r/model"] and not skipped
    for extra, problem in [({"start_from": "nope"}, "not a point that starts from scratch"),
                           ({"start_from": "aq"}, "not a point that starts from scratch"),
                           ({"start_from": "budget=0.5", "set": {"model.init_from": "x.pt"}}, "not both")]:
        trial = {"name": "aq", "set": {}, **extra}
        with pytest.raises(ConfigError, match=problem):
            load_space(_space(tmp_path, base_yaml, seeds=[0], extra_trials=[trial]))
