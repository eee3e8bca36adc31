"""Job specs are validated at submit time; the SQL store orders and guards state changes."""
import pytest

from rubiks_service.queue.spec import load_job_spec
from rubiks_service.queue.store import CANCELLED, FAILED, QUEUED, RUNNING, SUBMITTED, JobStore, UnknownJob
from rubiks_service.train.config import ConfigError

from ..train.conftest import training_config, write_yaml


@pytest.fixture
def train_yaml(tmp_path, colour_data):
    return write_yaml(tmp_path / "train.yaml", training_config(colour_data, str(tmp_path / "runs")))


def _spec(tmp_path, name="job", **fields):
    return write_yaml(tmp_path / f"{name}.yaml", {"name": name, "kind": "train", "config": "train.yaml", **fields})


def test_spec_resolves_and_validates_its_config(tmp_path, train_yaml):
    spec = load_job_spec(_spec(tmp_path, set=["optim.epochs=2"]), priority=5)
    assert spec.config == train_yaml and spec.priority == 5
    assert spec.entrypoint() == f"rubiks train {train_yaml} --set optim.epochs=2"
    assert spec.entrypoint("python -m rubiks_service.cli").startswith("python -m rubiks_service.cli train ")


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
