"""Training with no shared disk, against a real S3 server (moto's): `rubiks train` from an empty
working directory with its manifests and storage_path in the bucket, a worker killed mid-run, the
model served from the bucket; frame shards prepared into the bucket and trained from."""
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from rubiks_service import storage
from rubiks_service.cli import main
from rubiks_service.data.clip_spec import ClipSpec
from rubiks_service.data.frame_shards import frames_dataset, frames_of_rows, read_meta, read_rows
from rubiks_service.data.video import read_clips
from rubiks_service.train.config import load_config
from rubiks_service.train.trainer import fit, read_training_checkpoint

from tests.helpers.training import training_config, write_yaml

RUN = "s3run"


@pytest.fixture(scope="module")
def ray_s3(s3_server):
    """A local Ray instance whose processes hold the S3 server's AWS_* variables (as a cluster's nodes
    get them from their environment), and the dashboard, whose state API finds the Train workers."""
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in s3_server.env()}
    os.environ.update(s3_server.env())
    for attempt in (1, 2, 3):  # Ray's own start-up deadline (30 s) is missed now and then on a loaded machine
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False,
                     configure_logging=False)
            break
        except Exception as exc:  # noqa: BLE001 - "timed out during startup" is a plain Exception
            ray.shutdown()
            if attempt == 3 or "timed out during startup" not in str(exc):
                raise
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield s3_server
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _config(tmp_path, s3_colours, name: str, **sections) -> str:
    tree = training_config(s3_colours["local"], "s3://rubiks/runs", name=name, **sections)
    tree["data"].update({"train_manifest": s3_colours["train"], "val_manifest": s3_colours["val"]})
    return write_yaml(tmp_path / f"{name}.yaml", tree)


def _kill_a_worker_once_two_checkpoints_exist(server, prefix: str, killed: list) -> None:
    """SIGKILL the Train worker once two checkpoints are in the bucket (so the first is surely registered).
    Its pid is found first: the state API can take seconds on a loaded machine, the kill must not."""
    import ray
    from ray.util.state import list_actors

    deadline = time.time() + 600
    pid = None
    while pid is None and time.time() < deadline:
        if ray.is_initialized():  # `rubiks train` joins the module's instance
            address = ray.get_runtime_context().gcs_address  # this one: other Ray instances may run here
            actors = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker"),
                                                           ("state", "=", "ALIVE")])
            pid = actors[0].pid if actors else None
        time.sleep(0.5)
    while time.time() < deadline:
        if len({key.split("/")[2] for key in server.keys(prefix) if key.split("/")[2].startswith("checkpoint_")}) >= 2:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def trained(ray_s3, s3_colours, tmp_path_factory):
    """`rubiks train` in an empty working directory: manifests and storage_path in the bucket, MLflow's
    database in another folder; a Train worker is killed once two checkpoints are in the bucket."""
    from mlflow.tracking import MlflowClient

    base = tmp_path_factory.mktemp("s3train")
    work = base / "work"
    work.mkdir()
    config = _config(base, s3_colours, RUN, optim={"epochs": 4}, max_failures=2)
    tracking = f"sqlite:///{base}/mlflow.db"
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_a_worker_once_two_checkpoints_exist,
                               args=(ray_s3, f"runs/{RUN}/", killed), daemon=True)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        watcher.start()
        status = main(["train", config, "--tracking-uri", tracking, "--verbose", "--json"])
    finally:
        os.chdir(cwd)
    watcher.join(timeout=5)
    client = MlflowClient(tracking_uri=tracking)
    run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
    return {"status": status, "work": str(work), "killed": killed, "run": run, "tracking": tracking}


def test_rubiks_train_keeps_checkpoints_and_artifacts_in_the_bucket_and_nothing_local(trained, s3_server):
    assert trained["status"] == 0
    assert os.listdir(trained["work"]) == []  # no runs/, no mlruns/, no log: nothing in the working directory
    checkpoints = [k for k in s3_server.keys(f"runs/{RUN}/") if k.endswith("/checkpoint.pt")]
    assert checkpoints and all(k.split("/")[2].startswith("checkpoint_") for k in checkpoints)
    run = trained["run"]
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("s3://rubiks/runs/mlartifacts/")
    artifacts = s3_server.keys(run.info.artifact_uri.removeprefix("s3://rubiks/"))
    names = {k.split("/artifacts/", 1)[1] for k in artifacts}
    assert "checkpoint/checkpoint.pt" in names, names
    from mlflow.tracking import MlflowClient  # the run's model is a LoggedModel, with its own folder in the bucket

    model = MlflowClient(tracking_uri=trained["tracking"]).get_logged_model(run.data.tags["rubiks.model_id"])
    assert model.artifact_location.startswith("s3://rubiks/runs/mlartifacts/"), model.artifact_location
    assert f"{model.artifact_location}/MLmodel".removeprefix("s3://rubiks/") in s3_server.keys(
        model.artifact_location.removeprefix("s3://rubiks/"))


def test_a_killed_worker_resumed_from_the_checkpoint_in_the_bucket(trained, s3_server):
    assert trained["killed"], "the worker was never killed"
    last = max(k for k in s3_server.keys(f"runs/{RUN}/") if k.endswith("/checkpoint.pt"))
    history = read_training_checkpoint(f"s3://rubiks/{last}")["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["resumed_from_epoch"] >= 1  # the restarted workers restored from the bucket


def test_predict_reads_the_model_and_the_video_from_the_bucket(trained, s3_server, s3_colours, capsys):
    capsys.readouterr()
    checkpoint = "s3://rubiks/" + max(k for k in s3_server.keys(f"runs/{RUN}/") if k.endswith("/checkpoint.pt"))
    video = f"{s3_colours['prefix']}/videos/val/red_0.mp4"
    for model in (checkpoint, f"runs:/{trained['run'].info.run_id}/model"):  # the bucket; MLflow's artifacts there
        assert main(["predict", model, video, "--json", "--tracking-uri", trained["tracking"]]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["failed"] == 0 and result["videos"][0]["top"][0]["class"] in ("red", "blue")


def test_frame_shards_prepared_into_the_bucket_train_a_model(ray_s3, s3_colours, tmp_path, capsys):
    out = {split: f"s3://rubiks/frames/{split}" for split in ("train", "val")}
    for split in out:
        assert main(["data", "prepare-frames", s3_colours[split], out[split], "--crop-size", "24",
                     "--videos-per-shard", "4", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["videos"] == {"train": 12, "val": 6}[split] and summary["unreadable"] == []
        assert summary["shards"] == len(storage.list_files(out[split], (".parquet",))) >= 1
        assert read_meta(out[split])["classes"] == ["red", "blue"]
    # a row holds every frame of its video at the short side, exactly as decoded
    rows = frames_of_rows(frames_dataset(out["val"]).take_batch(1, batch_format="numpy"))
    video = rows["path"][0]
    short_side = ClipSpec(crop_size=24).decode_short_side
    assert read_meta(out["val"])["short_side"] == short_side
    np.testing.assert_array_equal(rows["frames"][0], read_clips(video, lambda n: [np.arange(n)], short_side)[0])
    cfg = load_config(_config(tmp_path, s3_colours, "shards", optim={"epochs": 2},
                              data={"train_frames": out["train"], "val_frames": out["val"], "flip": True},
                              eval_protocols=["1clip", "2clip"]))
    outcome = fit(cfg)
    assert outcome.metrics["val_clips"] == 6 and outcome.metrics["2clip_clips"] == 6
    # learned from the shards' frames and labels (validation accuracy after 2 epochs on 12 videos is not yet
    # a measure: BatchNorm's running statistics have seen 6 steps)
    assert outcome.metrics["train_top1"] >= 0.9, outcome.history

    # held in the workers: each of two DDP workers reads the bucket's shards itself (no Ray Data), the same
    # rows Ray Data serves, and takes an equal part of them
    everything = frames_of_rows(frames_dataset(out["train"]).take_batch(100, batch_format="numpy"))
    direct = read_rows(out["train"])
    assert sorted(everything["path"]) == list(direct["path"]) and len(direct["path"]) == 12
    at = list(direct["path"]).index(everything["path"][0])
    np.testing.assert_array_equal(direct["frames"][at], everything["frames"][0])
    held = fit(load_config(_config(tmp_path, s3_colours, "held", optim={"epochs": 4},
                                   data={"train_frames": out["train"], "val_frames": out["val"], "flip": True,
                                         "hold_in_worker": True},
                                   scaling={"num_workers": 2, "cpus_per_worker": 0.5})))
    assert held.metrics["val_clips"] == 6 and held.metrics["train_top1"] >= 0.9, held.history
