"""A two-node Ray cluster on this machine (ray.cluster_utils.Cluster: a head and a second
node, two CPUs each): a sweep submitted through the queue runs its trials on both nodes
and its results land in MLflow."""
import os
import shlex
import sys
import time

import pytest

from rubiks_service.queue.dispatcher import Dispatcher, mlflow_run_finder
from rubiks_service.queue.spec import load_job_spec
from rubiks_service.queue.store import FAILED, SUCCEEDED, JobStore
from rubiks_service.tracking.mlflow_store import make_client
from rubiks_service.tracking.sweep_results import child_runs

from tests.helpers.training import training_config, write_yaml


@pytest.fixture
def two_nodes():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": True})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_a_queued_sweep_spreads_trials_over_two_nodes(tmp_path, colour_data, two_nodes):
    import ray
    from ray.job_submission import JobSubmissionClient

    storage = str(tmp_path / "runs")
    # a trial's worker needs 1.5 CPUs: two trials cannot share a 2-CPU node
    base = write_yaml(tmp_path / "base.yaml", training_config(
        colour_data, storage, optim={"epochs": 1}, scaling={"num_workers": 1, "cpus_per_worker": 1.5}))
    write_yaml(tmp_path / "space.yaml", {
        "name": "two-nodes", "base": base, "search": {"optim.lr": {"grid": [0.003, 0.01]}},
        "max_concurrent_trials": 2, "scheduler": {"type": "fifo"}})
    spec = load_job_spec(write_yaml(tmp_path / "job.yaml", {"name": "spread", "kind": "sweep", "config": "space.yaml"}))

    context = ray.init(address=two_nodes.address)
    try:
        client = JobSubmissionClient("http://" + context.dashboard_url)
        uri = "sqlite:///" + os.path.join(storage, "mlflow.db")
        store = JobStore("sqlite:///" + str(tmp_path / "queue.db"))
        job = store.add(spec)
        dispatcher = Dispatcher(store, client, launcher=f"{shlex.quote(sys.executable)} -m rubiks_service.cli",
                                tracking_uri=uri, find_mlflow_run=mlflow_run_finder(uri))
        deadline = time.time() + 600
        while store.get(job.id).state not in (SUCCEEDED, FAILED) and time.time() < deadline:
            dispatcher.step()
            time.sleep(1)
        done = store.get(job.id)
        assert done.state == SUCCEEDED, (done.error, client.get_job_logs(done.submission_id)[-4000:])
    finally:
        ray.shutdown()

    mlflow = make_client(uri)
    parent = mlflow.get_run(done.mlflow_run_id)  # the sweep's parent run, found through the job id
    assert parent.info.status == "FINISHED"
    children = child_runs(mlflow, "tests", parent.info.run_id)
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    nodes = {c.data.tags["rubiks.train_node"] for c in children}
    assert len(nodes) == 2, f"both trials trained on one node: {nodes}"
