"""Seeds: the same trial run twice (two trials of one sweep, same config and seed, side by side in
separate Train workers) gives the same comparison-table row and bit-identical weights on CPU; another
seed gives other weights (so the check can fail)."""
import os

import pytest
import torch

from rubiks_service.models.checkpoint import read_checkpoint_file
from rubiks_service.tracking.mlflow_store import make_client
from rubiks_service.tracking.sweep_results import comparison_rows
from rubiks_service.tune.space import load_space
from rubiks_service.tune.sweep import run_sweep

from tests.helpers.training import training_config, write_yaml


@pytest.mark.usefixtures("ray_cluster")
def test_same_seed_same_table_and_weights(tmp_path, colour_data):
    storage = str(tmp_path / "runs")
    base = write_yaml(tmp_path / "base.yaml", training_config(
        colour_data, storage, optim={"epochs": 1}, data={"cache_frames": True, "flip": True, "decode_cpus": 0.2},
        scaling={"cpus_per_worker": 0.4}, seed=3))  # the three trials fit 2 CPUs at once
    space = write_yaml(tmp_path / "space.yaml", {
        "name": "seeds", "base": base,
        "extra_trials": [{"name": "again", "set": {}}, {"name": "seed 4", "set": {"seed": 4}}],
        "max_concurrent_trials": 3, "scheduler": {"type": "fifo"},
    })
    outcome = run_sweep(load_space(space), verbose=0)
    assert outcome.trials == 3 and outcome.errors == 0
    rows = {r["label"]: r for r in comparison_rows(outcome.points)}
    first, again, other = rows["base"], rows["again"], rows["seed 4"]
    same = ("1clip_top1", "val_top1", "gmacs", "mparams")
    assert {k: first[k] for k in same} == {k: again[k] for k in same}
    assert first["seed"] == again["seed"] == "3" and other["seed"] == "4"

    client = make_client("sqlite:///" + os.path.join(storage, "mlflow.db"))

    def weights(run_id):
        path = client.download_artifacts(run_id, "checkpoint/checkpoint.pt", str(tmp_path / run_id))
        return read_checkpoint_file(path)["model"]

    a, b, c = weights(first["run_id"]), weights(again["run_id"]), weights(other["run_id"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # CPU: bit-identical
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
