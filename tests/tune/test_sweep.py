"""A real 2-trial sweep: Ray Tune trials each running a nested TorchTrainer, tracked as
child runs of one MLflow parent run (SQLite store), ending with the Pareto artifacts."""
import json
import os

import pytest

from rubiks_service.cli import main as cli_main
from rubiks_service.tracking.mlflow_store import make_client
from rubiks_service.tracking.sweep_results import child_runs
from rubiks_service.tune.space import load_space
from rubiks_service.tune.sweep import run_sweep

from tests.helpers.training import training_config, write_yaml


@pytest.mark.usefixtures("ray_cluster")
def test_two_trial_sweep_parent_child_runs_and_pareto(tmp_path, colour_data, capsys):
    storage = str(tmp_path / "runs")
    base = write_yaml(tmp_path / "base.yaml", training_config(colour_data, storage, optim={"epochs": 1}))
    space = write_yaml(tmp_path / "space.yaml", {
        "name": "two-trials", "base": base,
        "search": {"model.name": {"grid": ["rubiksnet-nano"]}},
        "extra_trials": [{"name": "per-frame", "set": {"model.temporal_shift": False}}],
        "max_concurrent_trials": 2, "scheduler": {"type": "fifo"},
    })
    outcome = run_sweep(load_space(space))
    assert outcome.trials == 2 and outcome.errors == 0

    uri = "sqlite:///" + os.path.join(storage, "mlflow.db")
    client = make_client(uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    children = child_runs(client, "tests", outcome.parent_run_id)
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    kinds = sorted(c.data.tags["rubiks.kind"] for c in children)
    assert kinds == ["per-frame", "rubiksnet"]  # families from the trials' configs
    for child in children:
        history = client.get_metric_history(child.info.run_id, "val_top1")
        assert [m.step for m in history] == [1]  # per-epoch metrics arrived while training ran
        assert {"1clip_top1", "gmacs", "mparams", "latency_ms", "latency_ratio"} <= set(child.data.metrics)
        assert child.data.metrics["latency_ms"] > 0  # timed after the sweep, against the reference model
        assert child.data.params["model.name"] == "rubiksnet-nano"
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")}
        assert artifacts == {"checkpoint/checkpoint.pt"}
    pareto = {a.path for a in client.list_artifacts(outcome.parent_run_id, "pareto")}
    assert {"pareto/pareto.png", "pareto/pareto.json", "pareto/pareto_gmacs.txt", "pareto/pareto_latency_ms.txt"} <= pareto
    # the per-frame baseline costs the 2D shift of the same tier
    assert len(outcome.points) == 2

    capsys.readouterr()  # drop what Tune printed while the sweep ran
    assert cli_main(["pareto", "--experiment", "tests", "--tracking-uri", uri, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parent_run_id"] == outcome.parent_run_id and printed["frontier"]
    assert cli_main(["pareto", "--experiment", "tests", "--tracking-uri", uri, "--cost", "latency", "--json"]) == 0
    by_latency = json.loads(capsys.readouterr().out)
    assert by_latency["cost"] == "latency_ms" and by_latency["frontier"]
    assert all("latency_ms" in p for p in by_latency["points"])

    # every trial logged its MLflow model; the frontier became a registered model with two aliases
    for child in children:
        assert child.data.tags["rubiks.model_uri"] == f"runs:/{child.info.run_id}/model"
    reg = outcome.registered
    front_ids = [g["run_ids"][0] for g in printed["frontier"]]  # one seed: one run per point
    assert reg["name"] == "tests" and [v["run_id"] for v in reg["versions"]] == front_ids
    versions = {int(v.version): v for v in client.search_model_versions("name='tests'")}
    assert {v["version"] for v in reg["versions"]} == set(versions)
    best = client.get_model_version_by_alias("tests", "best-accuracy")
    cheapest = client.get_model_version_by_alias("tests", "cheapest")
    by_run = {p["run_id"]: p for p in outcome.points}
    assert by_run[best.run_id]["1clip_top1"] == max(by_run[r]["1clip_top1"] for r in front_ids)
    assert by_run[cheapest.run_id]["gmacs"] == min(by_run[r]["gmacs"] for r in front_ids)
    assert client.get_run(outcome.parent_run_id).data.tags["rubiks.model_uri"] == f"models:/tests/{best.version}"

    video = os.path.join(colour_data["root"], "videos", "val", "red_0.mp4")
    assert cli_main(["predict", "models:/tests@best-accuracy", video, "--tracking-uri", uri, "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert predicted["model"] == "models:/tests@best-accuracy" and predicted["videos"][0]["top"][0]["class"] in ("red", "blue")
