"""The dispatcher against a real local Ray (Jobs API on the dashboard) and a real SQLite queue:
a job runs to success with its MLflow run recorded, a crash between submit and state write
neither loses nor duplicates the job, a failing job fails with its error, cancel works."""
import os
import shlex
import sys
import time

import pytest

from rubiks_service.queue.dispatcher import Dispatcher, mlflow_model_uri_reader, mlflow_run_finder
from rubiks_service.queue.spec import load_job_spec
from rubiks_service.queue.store import CANCELLED, FAILED, QUEUED, SUBMITTED, SUCCEEDED, JobStore

from tests.helpers.training import training_config, write_yaml

LAUNCHER = f"{shlex.quote(sys.executable)} -m rubiks_service.cli"


class CrashAfterSubmit(Exception):
    pass


@pytest.fixture
def setup(tmp_path, colour_data, ray_cluster):
    from ray.job_submission import JobSubmissionClient

    storage = str(tmp_path / "runs")
    write_yaml(tmp_path / "train.yaml", training_config(colour_data, storage, optim={"epochs": 1}))
    store = JobStore("sqlite:///" + str(tmp_path / "queue.db"))
    client = JobSubmissionClient("http://" + ray_cluster.dashboard_url)
    uri = "sqlite:///" + os.path.join(storage, "mlflow.db")
    return tmp_path, store, client, uri


def _spec(tmp_path, name, **fields):
    return load_job_spec(write_yaml(tmp_path / f"{name}.yaml", {"name": name, "kind": "train", "config": "train.yaml",
                                                                "max_retries": 0, **fields}))


def _wait(dispatcher, store, job_id, states, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        dispatcher.step()
        if store.get(job_id).state in states:
            return store.get(job_id)
        time.sleep(1)
    raise AssertionError(f"{job_id} still {store.get(job_id).state}")


def test_crash_between_submit_and_state_write_then_success(setup):
    tmp_path, store, client, uri = setup
    job = store.add(_spec(tmp_path, "ok"))

    def crash(_job):
        raise CrashAfterSubmit()

    crashing = Dispatcher(store, client, launcher=LAUNCHER, tracking_uri=uri, before_state_write=crash)
    deadline = time.time() + 300
    with pytest.raises(CrashAfterSubmit):  # a fresh cluster may answer "no available agent" for a while
        while time.time() < deadline:
            crashing.step()
            time.sleep(1)
    assert store.get(job.id).state == QUEUED  # the state write never happened...
    assert client.get_job_info(job.id) is not None  # ...but Ray has the job

    restarted = Dispatcher(store, client, launcher=LAUNCHER, tracking_uri=uri, find_mlflow_run=mlflow_run_finder(uri),
                           find_model_uri=mlflow_model_uri_reader(uri))
    restarted.step()  # resubmitting the same id is refused by Ray: recorded, not duplicated
    assert store.get(job.id).state in (SUBMITTED, "running", SUCCEEDED)
    assert sum(1 for j in client.list_jobs() if j.submission_id == job.id) == 1

    done = _wait(restarted, store, job.id, (SUCCEEDED, FAILED))
    assert done.state == SUCCEEDED, (done.error, client.get_job_logs(job.id)[-3000:])
    assert done.attempts == 1 and done.submitted_at and done.finished_at
    assert done.mlflow_run_id  # the run the job opened, found by its rubiks.job_id tag
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(done.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["rubiks.job_id"] == job.id
    assert done.model_uri and done.model_uri == run.data.tags["rubiks.model_uri"]  # the queue knows the model


def test_failing_job_is_not_retried_and_queued_job_cancels(setup, colour_data):
    tmp_path, store, client, uri = setup
    # the training config is valid, but its data will be gone by the time the job runs
    write_yaml(tmp_path / "train.yaml", training_config({**colour_data, "train": str(tmp_path / "gone.csv")},
                                                        str(tmp_path / "runs")))
    (tmp_path / "gone.csv").write_text("path,label\n")
    bad = store.add(_spec(tmp_path, "bad", max_retries=3))
    waiting = store.add(_spec(tmp_path, "waiting"))
    dispatcher = Dispatcher(store, client, launcher=LAUNCHER, tracking_uri=uri, max_running=1)
    dispatcher.step()
    assert store.get(bad.id).state != QUEUED and store.get(waiting.id).state == QUEUED  # limit of 1
    assert dispatcher.cancel(waiting.id) == CANCELLED
    failed = _wait(dispatcher, store, bad.id, (FAILED, SUCCEEDED))
    assert failed.state == FAILED and failed.attempts == 1  # the job's own error: no retry
    assert "JOB_ENTRYPOINT_COMMAND_ERROR" in failed.error
