"""The deployment run for real (services as docker-compose.yml starts them, see conftest.py):
PostgreSQL shared by the queue and the MLflow server (--serve-artifacts to an s3:// destination), a
two-node Ray cluster with token authentication whose nodes share no folder, the dispatcher, and an S3
server holding all job data. From a folder outside the project a user submits a sweep whose manifests,
videos and storage_path are in the bucket; it succeeds, with a trial trained on the non-head node, its
checkpoints and MLflow artifacts are objects in the bucket, and everything it logged is readable through
the MLflow server; the frontier model it registered predicts an s3:// video from an empty folder;
concurrent submits neither lose nor double a job; a SIGKILLed dispatcher restarts and the job completes
once; the Jobs API refuses a call without the token, the MLflow server (basic-auth) one without the
login; the MLflow UI shows the sweep in a browser that signs in."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import time

import pytest
import requests

from tests.helpers.training import training_config, write_yaml
from .services import wait_for

pytestmark = pytest.mark.slow


DATA, RUNS = "stack/colours", "stack/runs"  # the job's data and its storage_path, as keys in the bucket


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory, colour_data, stack):
    """A user's folder outside the project: a small sweep job (space + base config) whose data and
    storage_path are in the bucket (colour_data uploaded: its manifests' video paths are relative, so
    they resolve under the manifests' prefix)."""
    home = tmp_path_factory.mktemp("user")
    data = stack.s3.upload_tree(colour_data["root"], DATA)
    base = training_config(colour_data, f"s3://{stack.s3.bucket}/{RUNS}", optim={"epochs": 1}, experiment="stack",
                           scaling={"num_workers": 1, "cpus_per_worker": 1.0})
    base["data"].update({"train_manifest": f"{data}/train.csv", "val_manifest": f"{data}/val.csv"})
    write_yaml(home / "base.yaml", base)
    write_yaml(home / "space.yaml", {"name": "stack-sweep", "base": "base.yaml",
                                     "search": {"optim.lr": {"grid": [0.003, 0.01]}},
                                     "max_concurrent_trials": 2, "scheduler": {"type": "fifo"}})
    write_yaml(home / "sweep-job.yaml", {"name": "stack-sweep", "kind": "sweep", "config": "space.yaml",
                                         "max_retries": 1})
    write_yaml(home / "train-job.yaml", {"name": "stack-train", "kind": "train", "config": "base.yaml"})
    return home


def _train_worker_nodes(stack) -> tuple[set[str], str]:
    """(the nodes any Ray Train worker ran on, the non-head node), from the state API (dead actors too)."""
    headers = {"Authorization": f"Bearer {stack.token}"}
    nodes = requests.get(f"{stack.dashboard}/api/v0/nodes?limit=100", headers=headers, timeout=30).json()
    worker_node, = [n["node_id"] for n in nodes["data"]["result"]["result"] if not n["is_head_node"]]
    actors = requests.get(f"{stack.dashboard}/api/v0/actors", headers=headers, timeout=60, params={
        "limit": 10000, "detail": 1, "filter_keys": "class_name", "filter_predicates": "=",
        "filter_values": "RayTrainWorker"}).json()
    return {a["node_id"] for a in actors["data"]["result"]["result"]}, worker_node


def _ray_jobs_for(stack, job_id: str) -> list:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(stack.dashboard, headers={"Authorization": f"Bearer {stack.token}"})
    return [j for j in client.list_jobs() if (j.metadata or {}).get("rubiks_job") == job_id]


def test_jobs_api_refuses_a_call_without_the_token(stack):
    without = requests.get(f"{stack.dashboard}/api/jobs/", timeout=10)
    assert without.status_code in (401, 403), without.text[:300]
    wrong = requests.get(f"{stack.dashboard}/api/jobs/", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code in (401, 403)
    right = requests.get(f"{stack.dashboard}/api/jobs/", headers={"Authorization": f"Bearer {stack.token}"}, timeout=10)
    assert right.status_code == 200


def test_mlflow_refuses_a_request_without_the_login(stack):
    """The compose MLflow server runs its basic-auth app with the admin from .env: the API and the UI
    answer 401 without the login or with a wrong one (MLflow's old default admin password included)."""
    api = f"{stack.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=5"
    user, password = stack.mlflow_login
    for auth in (None, (user, "wrong-password"), ("admin", "password1234")):
        assert requests.get(api, auth=auth, timeout=30).status_code == 401, auth
    assert requests.get(f"{stack.tracking_uri}/", timeout=30).status_code == 401  # the browser asks for a login
    right = requests.get(api, auth=(user, password), timeout=30)
    assert right.status_code == 200, right.text[:300]
    assert "experiments" in right.json()
    # the CLI without the login: one line saying how to sign in, exit 2
    env = {k: v for k, v in stack.env.items() if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    done = subprocess.run(["rubiks", "pareto", "--tracking-uri", stack.tracking_uri], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "MLFLOW_TRACKING_USERNAME" in done.stderr, done.stderr


def test_eight_concurrent_submits_give_eight_jobs(stack, user_dir):
    """Eight `rubiks submit` processes at once against a fresh PostgreSQL queue (each also runs the
    schema migration on start): eight distinct jobs, nothing lost or doubled. Then cancelled."""
    procs = [subprocess.Popen(["rubiks", "submit", "train-job.yaml", "--queue-url", stack.queue_url,
                               "--priority", "-5", "--json"],
                              cwd=user_dir, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    ids = [json.loads(out)["id"] for out, _ in outs]
    assert len(set(ids)) == 8
    listed = stack.rubiks("jobs", "list", "--queue-url", stack.queue_url, "--json", cwd=user_dir)
    assert listed.returncode == 0, listed.stderr
    jobs = {j["id"]: j for j in json.loads(listed.stdout)}
    assert set(ids) <= set(jobs) and all(jobs[i]["state"] == "queued" for i in ids)
    for job_id in ids:  # out of the way of the sweep below
        done = stack.rubiks("jobs", "cancel", job_id, "--queue-url", stack.queue_url, cwd=user_dir)
        assert done.returncode == 0 and done.stdout.strip() == "cancelled", done.stderr
    # the queue's tables sit beside MLflow's in the one database, under their own names
    from sqlalchemy import create_engine, inspect

    tables = set(inspect(create_engine(stack.queue_url)).get_table_names())
    assert {"rubiks_queue_jobs", "rubiks_queue_alembic_version", "jobs", "experiments", "runs"} <= tables


def test_a_sweep_submitted_from_elsewhere_runs_once_through_a_dispatcher_crash(stack, user_dir, monkeypatch):
    done = stack.rubiks("submit", "sweep-job.yaml", "--queue-url", stack.queue_url, "--priority", "5", "--json",
                        cwd=user_dir)
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["id"]
    # the job carries its files: the user's folder may change or vanish after submit
    (user_dir / "space.yaml").write_text("name: [broken")
    os.remove(user_dir / "base.yaml")

    def state():
        out = stack.rubiks("jobs", "status", job_id, "--queue-url", stack.queue_url, cwd=str(user_dir))
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    dispatcher = stack.start_dispatcher()
    wait_for(lambda: state()["state"] == "running", "the sweep job running", 300, dispatcher)
    dispatcher.kill()  # SIGKILL, the whole group, while the job runs on the cluster
    dispatcher.proc.wait(10)
    time.sleep(2)
    restarted = stack.start_dispatcher("dispatcher-restarted")
    final = wait_for(lambda: (s := state())["state"] in ("succeeded", "failed", "cancelled") and s,
                     "the sweep job finishing", 900, restarted)
    ray_jobs = _ray_jobs_for(stack, job_id)
    logs = "" if final["state"] == "succeeded" else "\n".join(
        requests.get(f"{stack.dashboard}/api/jobs/{j.submission_id}/logs",
                     headers={"Authorization": f"Bearer {stack.token}"}, timeout=10).text[-4000:] for j in ray_jobs)
    assert final["state"] == "succeeded", (final, logs, restarted.log())
    assert final["attempts"] == 1 and len(ray_jobs) == 1  # submitted once, ran once
    assert final["mlflow_run_id"]

    # everything the sweep logged, read back through the MLflow server over HTTP, signed in as the services are
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.mlflow_login[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.mlflow_login[1])

    client = MlflowClient(tracking_uri=stack.tracking_uri)
    parent = client.get_run(final["mlflow_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["rubiks.job_id"] == job_id
    # the queue recorded the model the sweep registered (its frontier's best-accuracy alias)
    assert final["model_uri"] and final["model_uri"] == parent.data.tags["rubiks.model_uri"]
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:"), parent.info.artifact_uri  # served, not a path
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        assert 0.0 <= child.data.metrics["1clip_top1"] <= 1.0 and child.data.metrics["gmacs"] > 0
        assert len(client.get_metric_history(child.info.run_id, "val_top1")) >= 1
        files = [f.path for f in client.list_artifacts(child.info.run_id, "checkpoint")]
        assert any(p.endswith(".pt") for p in files), files
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)  # a client without S3 settings: the server reads the bucket
    png = client.download_artifacts(parent.info.run_id, "pareto/pareto.png", dst_path=str(user_dir))
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0

    # no shared disk: the artifacts are objects under the server's s3:// destination, the trials' Train
    # checkpoints objects under the sweep's storage_path, and a trial trained on the non-head node
    artifacts = stack.s3.keys("mlflow-artifacts/")
    assert any(k.endswith(f"/{parent.info.run_id}/artifacts/pareto/pareto.png") for k in artifacts), artifacts[:20]
    for child in children:
        assert any(f"/{child.info.run_id}/artifacts/checkpoint/" in k for k in artifacts), child.info.run_id
    checkpoints = [k for k in stack.s3.keys(f"{RUNS}/") if "/checkpoint_" in k]
    assert checkpoints, stack.s3.keys(f"{RUNS}/")[:20]
    trained_on, worker_node = _train_worker_nodes(stack)
    assert worker_node in trained_on, (trained_on, worker_node)
    stack.sweep = {"experiment_id": parent.info.experiment_id, "parent": parent.info.run_id,
                   "children": [c.info.run_name for c in children], "model_uri": final["model_uri"],
                   "accuracies": [c.data.metrics["1clip_top1"] for c in children]}
    restarted.stop()


def test_the_registered_model_predicts_a_video_in_the_bucket_from_an_empty_folder(stack, tmp_path):
    """`rubiks predict models:/<name>/<version> s3://…` (the frontier model the job registered) with the deployment's settings: the model comes
    through the MLflow server (from the bucket), the video from the bucket, and nothing is written to the
    folder it runs in."""
    sweep = getattr(stack, "sweep", None)
    if sweep is None:
        pytest.skip("the sweep test did not finish")
    assert sweep["model_uri"].startswith("models:/")  # the version the job registered (models:/<name>/<version>)
    video = f"s3://{stack.s3.bucket}/{DATA}/videos/val/blue_0.mp4"
    done = stack.rubiks("predict", sweep["model_uri"], video, "--topk", "2", "--json", cwd=str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["failed"] == 0 and result["num_classes"] == 2
    row, = result["videos"]
    assert row["video"] == video and {t["class"] for t in row["top"]} == {"red", "blue"}, row
    assert os.listdir(tmp_path) == []


def test_services_share_no_folder(stack, user_dir):
    """Each service ran in folders of its own (working folder, HOME, TMPDIR, a Ray node's --temp-dir), as
    in separate containers: none lies inside another's; each Ray node kept its session (its raylet's logs)
    in its own --temp-dir; and no `runs/` (the CLI's default local storage) appeared anywhere."""
    owned = [(service, path) for service, folders in stack.folders.items() for path in folders.values()]
    for service, path in owned:
        for other, other_path in owned:
            if other != service:
                assert os.path.commonpath([path, other_path]) not in (path, other_path), (service, other)
    for node in ("ray-head", "ray-gpu-worker"):
        # realpath: Ray links session_latest to the session folder (a restarted node may have two sessions)
        raylets = {os.path.realpath(p) for p in
                   glob.glob(os.path.join(stack.folders[node]["ray_temp"], "session_*", "logs", "raylet.out"))}
        assert raylets, node  # each node's raylet logs in its own --temp-dir: the nodes share no session folder
    workers = glob.glob(os.path.join(stack.folders["ray-gpu-worker"]["ray_temp"], "session_*", "logs", "worker-*"))
    assert workers  # the non-head node's Ray workers (the trials' Train workers among them) log there
    for folders in stack.folders.values():
        assert not os.path.exists(os.path.join(folders["work"], "runs")), folders["work"]
    assert not os.path.exists(user_dir / "runs")


def test_the_mlflow_ui_lists_the_sweep_in_a_browser(stack):
    sweep = getattr(stack, "sweep", None)
    if sweep is None:
        pytest.skip("the sweep test did not finish")
    from rubiks_service.tracking.mlflow_store import experiment_url

    from .browser import open_page

    # the link `rubiks ui` / `rubiks sweep` print: the training-runs table, not the GenAI view
    with open_page(experiment_url(stack.tracking_uri, sweep["experiment_id"]), width=1600, height=700,
                   login=stack.mlflow_login) as page:
        page.get_by_text("stack-sweep").first.wait_for(timeout=120_000)
        assistant = page.get_by_role("button", name="Close")
        if assistant.count():
            assistant.first.click()  # the assistant panel would hide the metric columns
        # child runs are folded under their parent: unfold, then show the accuracy and cost columns
        page.locator("button[data-component-id$='runnamecellrenderer.tsx_46']").first.click()
        for name in sweep["children"]:
            page.get_by_text(name, exact=False).first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Columns").click()
        for metric in ("1clip_top1", "gmacs"):
            page.get_by_text(metric, exact=True).first.click()
        page.keyboard.press("Escape")
        page.get_by_text("1clip_top1", exact=True).first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        body = page.inner_text("body")
        for value in sweep["accuracies"]:  # each child's accuracy as the table shows it
            assert f"{value:.4g}"[:4] in body, (value, body[-1500:])
        shot = os.environ.get("RUBIKS_UI_SCREENSHOT")
        if shot:
            page.screenshot(path=shot)
    # the parent run's Pareto plot, rendered by the UI's artifact viewer
    artifact_page = (f"{stack.tracking_uri}/#/experiments/{sweep['experiment_id']}/runs/{sweep['parent']}"
                     "/artifacts/pareto/pareto.png?workflowType=machine_learning")
    with open_page(artifact_page, login=stack.mlflow_login) as page:
        page.wait_for_function("() => [...document.querySelectorAll('img')].some(i => !i.src.startsWith('data:')"
                               " && i.complete && i.naturalWidth > 100 && i.naturalHeight > 100)", timeout=120_000)
