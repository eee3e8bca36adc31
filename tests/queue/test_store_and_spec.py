"""Job specs are validated at submit time; the SQL store orders and guards state changes."""
import pytest

from rubiks_service.queue.spec import load_job_spec
from rubiks_service.queue.store import CANCELLED, FAILED, QUEUED, RUNNING, SUBMITTED, JobStore, UnknownJob
from rubiks_service.train.config import ConfigError

from tests.helpers.training import training_config, write_yaml


@pytest.fixture
def train_yaml(tmp_path, colour_data):
    return write_yaml(tmp_path / "train.yaml", training_config(colour_data, str(tmp_path / "runs")))


def _spec(tmp_path, name="job", **fields):
    return write_yaml(tmp_path / f"{name}.yaml", {"name": name, "kind": "train", "config": "train.yaml", **fields})


def test_spec_resolves_and_validates_its_config(tmp_path, train_yaml):
    spec = load_job_spec(_spec(tmp_path, set=["optim.epochs=2"]), priority=5)
    assert spec.config == train_yaml and spec.priority == 5
    # the job's command unpacks the bundle it carries and runs it
    assert spec.entrypoint() == "rubiks jobs exec train"
    assert spec.entrypoint("python -m rubiks_service.cli") == "python -m rubiks_service.cli jobs exec train"


def test_a_job_carries_its_resolved_files(tmp_path, train_yaml):
    """The bundle is self-contained: overrides applied, paths absolute; editing or deleting the
    submitted files afterwards changes nothing, and the bundle validates on its own."""
    import os

    import yaml

    from rubiks_service.queue.spec import bundle_job, write_bundle
    from rubiks_service.train.config import load_config

    bundle = bundle_job(load_job_spec(_spec(tmp_path, set=["optim.epochs=2"])))
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
def test_bad_specs_are_refused(tmp_path, train_yaml, fields, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_job_spec(_spec(tmp_path, **fields))


def test_shipped_job_specs_are_valid():
    import glob
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    specs = glob.glob(os.path.join(root, "jobs", "*.yaml"))
    assert specs
    for path in specs:
        assert load_job_spec(path).entrypoint().startswith("rubiks ")


def test_order_is_priority_then_fifo_and_transitions_are_guarded(tmp_path, train_yaml):
    store = JobStore("sqlite:///" + str(tmp_path / "q.db"))
    low1 = store.add(load_job_spec(_spec(tmp_path, "low1")))
    high = store.add(load_job_spec(_spec(tmp_path, "high", priority=3)))
    low2 = store.add(load_job_spec(_spec(tmp_path, "low2")))
    assert [j.id for j in store.next_queued(10)] == [high.id, low1.id, low2.id]

    assert store.transition(high.id, [QUEUED], SUBMITTED, submission_id=high.id)
    assert not store.transition(high.id, [QUEUED], SUBMITTED)  # a second dispatcher loses
    assert store.transition(high.id, [SUBMITTED], RUNNING)
    assert store.get(high.id).started_at is not None
    assert store.transition(high.id, [SUBMITTED, RUNNING], FAILED, error="boom")
    job = store.get(high.id)
    assert job.state == FAILED and job.finished_at is not None and job.error == "boom"
    assert store.transition(low1.id, [QUEUED], CANCELLED)
    assert [j.id for j in store.next_queued(10)] == [low2.id]
    # the store is durable: a new instance over the same file sees the same jobs
    again = JobStore(store.url)
    assert {j.id: j.state for j in again.list()} == {low1.id: CANCELLED, high.id: FAILED, low2.id: QUEUED}
    with pytest.raises(UnknownJob):
        again.get("rubiks-train-nope")
