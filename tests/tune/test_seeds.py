"""Seeds as replicates: a space's `seeds` runs every point once per seed, grouped in MLflow (tag
`rubiks.point`) and summarised per point (n, mean, 95% interval) in the comparison and in `rubiks pareto
--json`. The same config and seed gives bit-identical weights on CPU whatever runs beside it and however
its data is decoded (the second point differs only in its decode actors' CPUs); another seed gives
other weights (so the check can fail)."""
import json
import os

import pytest
import torch

from rubiks_service.cli import main as cli_main
from rubiks_service.models.checkpoint import read_checkpoint_file
from rubiks_service.tracking.mlflow_store import make_client
from rubiks_service.tracking.sweep_results import child_runs, comparison_rows
from rubiks_service.tune.space import load_space
from rubiks_service.tune.sweep import run_sweep

from tests.helpers.training import training_config, write_yaml


@pytest.mark.usefixtures("ray_cluster")
def test_seeds_replicate_every_point_and_same_seed_same_weights(tmp_path, colour_data, capsys):
    storage = str(tmp_path / "runs")
    base = write_yaml(tmp_path / "base.yaml", training_config(
        colour_data, storage, optim={"epochs": 1}, data={"cache_frames": True, "flip": True, "decode_cpus": 0.2},
        scaling={"cpus_per_worker": 0.4}))  # three trials fit 2 CPUs at once
    space = write_yaml(tmp_path / "space.yaml", {
        "name": "seeds", "base": base, "seeds": [3, 4],
        "extra_trials": [{"name": "again", "set": {"data.decode_cpus": 0.3}}],
        "max_concurrent_trials": 3, "scheduler": {"type": "fifo"}, "latency": {"rounds": 2, "warmup": 0},
    })
    outcome = run_sweep(load_space(space))
    assert outcome.trials == 4 and outcome.errors == 0

    uri = "sqlite:///" + os.path.join(storage, "mlflow.db")
    client = make_client(uri)
    runs = child_runs(client, "tests", outcome.parent_run_id)
    by = {(r.data.tags["rubiks.point"], r.data.tags["rubiks.seed"]): r for r in runs}
    assert set(by) == {("base", "3"), ("base", "4"), ("again", "3"), ("again", "4")}
    assert {r.data.params["seed"] for r in runs} == {"3", "4"}
    for r in runs:  # every replicate carries its group's summary and the latency measured apart
        assert r.data.metrics["group_n"] == 2 and "group_1clip_top1_mean" in r.data.metrics
        assert r.data.metrics["latency_ms"] > 0 and r.data.metrics["latency_ratio"] > 0

    rows = {r["label"]: r for r in comparison_rows(outcome.points)}
    assert rows["base"]["n"] == 2 and {"1clip_top1_mean", "1clip_top1_ci95", "1clip_top1_std"} <= set(rows["base"])
    groups = {g["label"]: g for g in outcome.groups}
    assert groups["base"]["seeds"] == ["3", "4"]

    def weights(run):
        path = client.download_artifacts(run.info.run_id, "checkpoint/checkpoint.pt", str(tmp_path / run.info.run_id))
        return read_checkpoint_file(path)["model"]

    a, again, other = weights(by[("base", "3")]), weights(by[("again", "3")]), weights(by[("base", "4")])
    assert a.keys() == again.keys() and all(torch.equal(a[k], again[k]) for k in a)  # CPU: bit-identical
    assert any(not torch.equal(a[k], other[k]) for k in a if a[k].is_floating_point())
    same = ("1clip_top1", "val_top1")
    assert ({k: by[("base", "3")].data.metrics[k] for k in same}
            == {k: by[("again", "3")].data.metrics[k] for k in same})

    capsys.readouterr()  # drop what the sweep printed
    assert cli_main(["pareto", "--experiment", "tests", "--tracking-uri", uri, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    row = {r["label"]: r for r in printed["rows"]}["base"]
    assert row["n"] == 2 and row["1clip_top1_mean"] == pytest.approx(groups["base"]["1clip_top1_mean"])
    assert "1clip_top1_ci95" in row and printed["conclusions"][0]["verdict"] in ("beats", "trails", "tied")


@pytest.mark.usefixtures("ray_cluster")
def test_a_point_started_from_another_runs_after_it_from_its_model_of_the_same_seed(tmp_path, colour_data, capsys):
    """`start_from`: RS-AQ fine-tuned from RS, replicate by replicate. The second stage's trials start
    from the first stage's MLflow model of their own seed (RS weights moved to RS-AQ's layout) and are
    grouped and compared like any point."""
    storage = str(tmp_path / "runs")
    base = write_yaml(tmp_path / "base.yaml", training_config(
        colour_data, storage, model={"name": "rubiksnet-nano", "variant": "rs"}, optim={"epochs": 1},
        scaling={"cpus_per_worker": 0.5}))
    space = write_yaml(tmp_path / "space.yaml", {
        "name": "started", "base": base, "seeds": [0, 1],
        "extra_trials": [{"name": "aq", "set": {"model.variant": "rs-aq"}, "start_from": "base"}],
        "max_concurrent_trials": 2, "scheduler": {"type": "fifo"}, "latency": {"measure": False},
    })
    outcome = run_sweep(load_space(space))
    assert outcome.trials == 4 and outcome.errors == 0
    client = make_client("sqlite:///" + os.path.join(storage, "mlflow.db"))
    runs = child_runs(client, "tests", outcome.parent_run_id)
    by = {(r.data.tags["rubiks.point"], r.data.tags["rubiks.seed"]): r for r in runs}
    assert set(by) == {("base", "0"), ("base", "1"), ("aq", "0"), ("aq", "1")}
    for seed in ("0", "1"):
        started, start = by[("aq", seed)], by[("base", seed)]
        assert started.data.tags["rubiks.init_from"] == f"runs:/{start.info.run_id}/model"
        assert started.data.params["model.variant"] == "rs-aq" and int(started.data.params["init_from.from_rs"]) == 10
        assert started.info.start_time >= start.info.end_time  # the second stage runs after the first
    assert {g["label"]: g["n"] for g in outcome.groups} == {"base": 2, "aq": 2}
