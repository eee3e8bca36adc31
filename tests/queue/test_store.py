"""The SQL job store: priority then FIFO order, guarded state changes, durable across instances."""
import pytest

from rubiks_service.queue.spec import load_job_spec
from rubiks_service.queue.store import CANCELLED, FAILED, QUEUED, RUNNING, SUBMITTED, JobStore, UnknownJob


def test_order_is_priority_then_fifo_and_transitions_are_guarded(tmp_path, train_yaml, job_yaml):
    store = JobStore("sqlite:///" + str(tmp_path / "q.db"))
    low1 = store.add(load_job_spec(job_yaml("low1")))
    high = store.add(load_job_spec(job_yaml("high", priority=3)))
    low2 = store.add(load_job_spec(job_yaml("low2")))
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
