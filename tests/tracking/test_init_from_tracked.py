"""Pretrain a 2D model on single frames through a tracked run, register it, and start a 3D run from
`models:/<name>@<alias>`: the workers load the inflated weights (all stages frozen, backbone lr 0:
they come out as they went in) and the run records what it loaded and which version it started from."""
import json
import os

import pytest
import torch

from rubiks_service.cli import main as cli_main
from rubiks_service.models.inflate import inflate_state_dict
from rubiks_service.models.checkpoint import read_checkpoint_file
from rubiks_service.tracking.tag_names import INIT_TAG, INIT_VERSION_TAG
from rubiks_service.tracking.mlflow_store import make_client
from rubiks_service.tracking.tracked_training import run_tracked_training
from rubiks_service.train.config import load_config

from tests.helpers.training import training_config, write_yaml

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _last_checkpoint(root):
    found = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f == "checkpoint.pt"]
    return max(found, key=os.path.getmtime)


def test_pretrain_2d_register_and_finetune_from_an_alias(tmp_path, colour_data, capsys):
    storage = str(tmp_path / "runs")
    uri = "sqlite:///" + os.path.join(storage, "mlflow.db")
    common = dict(optim={"epochs": 1}, eval_protocols=["1clip"])
    pre = training_config(colour_data, storage, name="pre2d", **common)
    pre["model"] = {"name": "rubiksnet-nano", "temporal_shift": False}
    pre["data"]["segments"] = 1  # single frames of the videos: an image model
    ft = training_config(colour_data, storage, name="ft3d", **common)
    ft["model"] = {"name": "rubiksnet-nano", "init_from": "models:/colours-2d@pretrained",
                   "inflate_temporal": "zeros", "freeze_stages": 6}
    ft["optim"]["backbone_lr_mult"] = 0.0
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the SQLite store keeps its artifacts under ./mlruns
    try:
        first = run_tracked_training(load_config(write_yaml(tmp_path / "pre.yaml", pre)), uri)
        client = make_client(uri)
        client.create_registered_model("colours-2d")
        run = client.get_run(first["run_id"])
        model_id = run.data.tags["rubiks.model_id"]  # the run's LoggedModel
        mv = client.create_model_version("colours-2d", source=client.get_logged_model(model_id).artifact_location,
                                         run_id=run.info.run_id, model_id=model_id)
        client.set_registered_model_alias("colours-2d", "pretrained", mv.version)

        ft_yaml = write_yaml(tmp_path / "ft.yaml", ft)
        capsys.readouterr()
        second = run_tracked_training(load_config(ft_yaml), uri)
        printed = [ln for ln in capsys.readouterr().out.splitlines() if "init_from" in ln]
        bad = dict(ft, model={**ft["model"], "init_from": "models:/colours-2d@nope"})
        code = cli_main(["train", write_yaml(tmp_path / "bad.yaml", bad), "--tracking-uri", uri])
        err = capsys.readouterr().err.strip().splitlines()
    finally:
        os.chdir(cwd)
    assert code == 2 and len(err) == 1 and "does not resolve" in err[0], err
    assert len(printed) == 1 and "loaded" in printed[0] and "5 2D shifts inflated" in printed[0], printed

    tags = client.get_run(second["run_id"]).data.tags
    params = client.get_run(second["run_id"]).data.params
    assert tags[INIT_TAG] == "models:/colours-2d@pretrained" and tags[INIT_VERSION_TAG] == f"colours-2d/{mv.version}"
    assert params["init_from.inflated"] == "5" and params["init_from.skipped"] == "0"
    report = json.loads(open(client.download_artifacts(second["run_id"], "init_from.json", str(tmp_path))).read())
    assert report["reinitialised"] == [] and len(report["frozen"]) > 0

    # the fine-tuned run's backbone is the inflated 2D run's (stages frozen, lr x 0), its epoch 1 of 1
    pre_state = read_checkpoint_file(_last_checkpoint(os.path.join(storage, "pre2d")))["model"]
    expected, _ = inflate_state_dict(pre_state, "zeros")
    ft_ckpt = read_checkpoint_file(_last_checkpoint(os.path.join(storage, "ft3d")))
    assert ft_ckpt["epoch"] == 0 and ft_ckpt["num_frames"] == 4
    for key, value in ft_ckpt["model"].items():
        if key.startswith(("backbone.conv1.", "backbone.layer")):
            assert torch.equal(value, expected[key]), key
