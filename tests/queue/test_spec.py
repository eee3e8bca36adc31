"""Job specs are validated and bundled at submit time; the bundle is all a job needs on the cluster."""
import glob
import os

import pytest

from rubiks_service.config_files import ConfigError
from rubiks_service.queue.spec import load_job, load_job_spec
from tests.helpers.reference import REPO_ROOT
from tests.helpers.training import write_yaml


def test_spec_resolves_and_validates_its_config(train_yaml, job_yaml):
    spec = load_job_spec(job_yaml(set=["optim.epochs=2"]), priority=5)
    assert spec.config == train_yaml and spec.priority == 5
    # the job's command unpacks the bundle it carries and runs it
    assert spec.entrypoint() == "rubiks jobs exec train"
    assert spec.entrypoint("python -m rubiks_service.cli") == "python -m rubiks_service.cli jobs exec train"


def test_a_job_carries_its_resolved_files(tmp_path, train_yaml, job_yaml):
    """The bundle is self-contained: overrides applied, paths absolute; editing or deleting the
    submitted files afterwards changes nothing, and the bundle validates on its own."""
    import yaml

    from rubiks_service.queue.spec import bundle_job, write_bundle
    from rubiks_service.train.config import load_config

    bundle = bundle_job(load_job_spec(job_yaml(set=["optim.epochs=2"])))
    assert set(bundle) == {"config.yaml"}
    os.remove(train_yaml)
    elsewhere = tmp_path / "cluster"
    elsewhere.mkdir()
    write_bundle(bundle, str(elsewhere))
    cfg = load_config(str(elsewhere / "config.yaml"))
    assert cfg.optim.epochs == 2
    assert os.path.isabs(cfg.data.train_manifest) and os.path.exists(cfg.data.train_manifest)
    assert yaml.safe_load(bundle["config.yaml"])["optim"]["epochs"] == 2


def test_a_sweep_job_carries_its_space_and_base(tmp_path, train_yaml):
    from rubiks_service.queue.spec import bundle_job, write_bundle
    from rubiks_service.tune.space import load_space

    write_yaml(tmp_path / "space.yaml", {"name": "s", "base": "train.yaml", "set": {"optim.epochs": 1},
                                         "search": {"optim.lr": {"grid": [0.01, 0.02]},
                                                    "optim.momentum": {"uniform": [0.8, 0.9]}}})
    spec = load_job_spec(write_yaml(tmp_path / "job.yaml", {"name": "s", "kind": "sweep", "config": "space.yaml"}))
    bundle = bundle_job(spec)
    assert set(bundle) == {"space.yaml", "base.yaml"} and spec.entrypoint().endswith("exec sweep")
    (tmp_path / "train.yaml").write_text("not: [valid")  # edited after submit: the job does not see it
    (tmp_path / "cluster").mkdir()
    write_bundle(bundle, str(tmp_path / "cluster"))
    loaded = load_space(str(tmp_path / "cluster" / "space.yaml"))
    assert [p["set"] for p in loaded.space.grid_points()] == [{"optim.lr": 0.01}, {"optim.lr": 0.02}]
    assert loaded.trial_config({}).optim.epochs == 1


@pytest.mark.parametrize("fields, needle", [
    ({"kind": "deploy"}, "kind"),
    ({"config": "missing.yaml"}, "not found"),
    ({"set": ["optim.lr=-3"]}, "optim.lr"),
    ({"resources": {"cpus": -1}}, "resources.cpus"),
    ({"surprise": True}, "surprise"),
])
def test_bad_specs_are_refused(train_yaml, job_yaml, fields, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_job(job_yaml(**fields))  # the spec and what it runs, as `rubiks submit` reads them


def test_shipped_job_specs_are_valid_and_runnable():
    """Every jobs/*.yaml loads and its config or space (with the job's overrides) validates."""
    specs = glob.glob(os.path.join(REPO_ROOT, "jobs", "*.yaml"))
    assert specs and len(specs) >= 2
    for path in specs:
        spec, _ = load_job(path)  # the spec, and the config or space it bundles, with the job's overrides
        assert spec.entrypoint().startswith("rubiks ")
