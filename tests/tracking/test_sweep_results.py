"""Sweep bookkeeping on a real MLflow SQLite store: closing scheduler-killed trials, the Pareto
frontier and its artifacts, finding the latest sweep."""
import pytest

from rubiks_service.tracking.mlflow_store import log_metrics, make_client, tracked_run
from rubiks_service.tracking.sweep_results import (
    close_orphaned_children,
    latest_sweep,
    log_frontier,
    sweep_points,
)
from rubiks_service.tracking.tag_names import PARENT_TAG


@pytest.fixture
def client(tmp_path):
    return make_client("sqlite:///" + str(tmp_path / "mlflow.db"))


def test_sweep_bookkeeping(client):
    with tracked_run(client, "exp", "sweep", tags={PARENT_TAG: "parent"}) as parent:
        finished = []
        for label, acc, gmacs in (("small", 0.8, 0.01), ("big", 0.95, 0.05), ("worse", 0.7, 0.02)):
            with tracked_run(client, "exp", label, parent_run_id=parent, tags={"rubiks.label": label}) as rid:
                log_metrics(client, rid, {"1clip_top1": acc, "gmacs": gmacs, "mparams": gmacs * 10})
                finished.append(rid)
        # a trial the scheduler killed: its run was left RUNNING
        killed = client.create_run(client.get_experiment_by_name("exp").experiment_id,
                                   tags={"mlflow.parentRunId": parent}).info.run_id
        log_metrics(client, killed, {"val_top1": 0.2}, step=1)
        with pytest.raises(RuntimeError):
            with tracked_run(client, "exp", "broken", parent_run_id=parent):
                raise RuntimeError("trial crashed")

        assert close_orphaned_children(client, "exp", parent) == 1
        closed = client.get_run(killed)
        assert closed.info.status == "FINISHED" and closed.data.tags["stopped_early"] == "true"

        points = sweep_points(client, "exp", parent)
        assert [p["label"] for p in points] == ["small", "worse", "big"]  # finished, evaluated, by cost
        png = log_frontier(client, parent, points)
        assert png.endswith("pareto/pareto.png")
    run = client.get_run(parent)
    assert run.info.status == "FINISHED" and run.data.tags["best_trial"] == "big"
    text = client.download_artifacts(parent, "pareto/pareto_gmacs.txt")
    body = open(text).read()
    assert "small" in body and "big" in body and "worse" not in body
    assert latest_sweep(client, "exp").info.run_id == parent
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([run.info.experiment_id])}
    assert statuses["broken"] == "FAILED"


def _family_sweep(client, with_latency=True):
    """A parent run with children of three families, tagged and logged as sweep trials are."""
    trials = (  # label, kind, model, acc, gmacs, latency
        ("rn-nano", "rubiksnet", "rubiksnet-nano", 0.60, 0.011, 3.0), ("rn-micro", "rubiksnet", "rubiksnet-micro", 0.70, 0.025, 6.0),
        ("rn-bad", "rubiksnet", "rubiksnet-micro", 0.50, 0.026, 6.5),
        ("tsm-nano", "tsm", "tsm-nano", 0.55, 0.0108, 1.0), ("tsm-micro", "tsm", "tsm-micro", 0.62, 0.026, 2.0),
        ("pf", "per-frame", "rubiksnet-nano", 0.14, 0.010, 2.5),
    )
    with tracked_run(client, "fam", "sweep", tags={PARENT_TAG: "parent"}) as parent:
        for label, kind, model, acc, gmacs, latency in trials:
            with tracked_run(client, "fam", label, parent_run_id=parent,
                             tags={"rubiks.label": label, "rubiks.kind": kind}) as rid:
                client.log_param(rid, "model.name", model)
                client.log_param(rid, "aq.budget", "0.5")
                client.log_param(rid, "model.variant", "rs" if kind == "per-frame" else "rs-aq")
                metrics = {"1clip_top1": acc, "gmacs": gmacs, "mparams": gmacs * 10}
                if with_latency and label != "rn-bad":  # latency may be missing on some trials
                    metrics["latency_ms"] = latency
                log_metrics(client, rid, metrics)
        points = sweep_points(client, "fam", parent)
        png = log_frontier(client, parent, points)
    return parent, points, png


def test_comparison_table_by_family_with_each_frontier(client, tmp_path):
    import csv

    from rubiks_service.tracking.sweep_results import comparison_rows, present_costs

    parent, points, _ = _family_sweep(client)
    assert present_costs(points) == ("gmacs", "latency_ms", "mparams")
    rows = {r["label"]: r for r in comparison_rows(points)}
    assert [r["kind"] for r in comparison_rows(points)] == ["rubiksnet"] * 3 + ["tsm"] * 2 + ["per-frame"]
    # each family's own frontier: tsm-micro is dominated overall (rn-micro) but is on TSM's frontier
    assert rows["tsm-micro"]["frontier_gmacs"] is True and rows["rn-bad"]["frontier_gmacs"] is False
    assert rows["rn-nano"]["frontier_gmacs"] and rows["rn-micro"]["frontier_gmacs"] and rows["pf"]["frontier_gmacs"]
    assert rows["rn-bad"]["frontier_latency_ms"] == "" and rows["rn-micro"]["frontier_latency_ms"] is True
    assert rows["rn-nano"]["budget"] == "0.5" and rows["rn-nano"]["variant"] == "rs-aq"
    assert "budget" not in rows["tsm-nano"] and "variant" not in rows["tsm-nano"]  # no shift settings on a TSM
    assert "budget" not in rows["pf"] and rows["pf"]["variant"] == "rs"  # B only means something for RS-AQ
    with open(client.download_artifacts(parent, "pareto/comparison.csv", str(tmp_path))) as f:
        table = list(csv.DictReader(f))
    assert [r["label"] for r in table] == [r["label"] for r in comparison_rows(points)]
    assert table[0]["kind"] == "rubiksnet" and float(table[0]["1clip_top1_mean"]) == 0.60 and table[0]["n"] == "1"
    assert {"latency_ms", "frontier_latency_ms", "gmacs"} <= set(table[0])
    # the same table as an MLflow table (the UI's artifact view / mlflow.load_table)
    logged = client.download_artifacts(parent, "pareto/comparison.json", str(tmp_path))
    import json

    body = json.load(open(logged))
    assert body["columns"][:2] == ["label", "kind"] and len(body["data"]) == 6
    arts = {a.path for a in client.list_artifacts(parent, "pareto")}
    assert {"pareto/pareto_latency_ms.txt", "pareto/pareto_gmacs.txt", "pareto/pareto.png"} <= arts


def test_plot_has_one_colour_per_family(client, tmp_path):
    import numpy as np
    from PIL import Image

    parent, points, _ = _family_sweep(client, with_latency=False)
    assert "pareto/pareto_latency_ms.txt" not in {a.path for a in client.list_artifacts(parent, "pareto")}
    img = np.asarray(Image.open(client.download_artifacts(parent, "pareto/pareto.png", str(tmp_path))).convert("RGB"))
    for rgb in ((31, 119, 180), (255, 127, 14), (127, 127, 127)):  # tab:blue, tab:orange, tab:gray
        assert (np.abs(img.astype(int) - rgb).sum(axis=-1) < 10).sum() > 50, rgb


def test_replicates_grouped_on_the_parent_and_children(client, tmp_path):
    """Trials tagged with their point and seed: one row per point (n, mean, interval), the frontier of
    the means, every child carrying its group's summary, the parent one metric per point and the
    conclusions, which call a difference within the noise a tie."""
    import json

    trials = {"rn": (0.80, 0.82, 0.81), "rn-noisy": (0.70, 0.85, 0.76), "tsm": (0.60, 0.62, 0.61)}
    with tracked_run(client, "reps", "sweep", tags={PARENT_TAG: "parent"}) as parent:
        for label, accs in trials.items():
            for seed, acc in enumerate(accs):
                tags = {"rubiks.label": label, "rubiks.point": label, "rubiks.seed": str(seed),
                        "rubiks.kind": "tsm" if label == "tsm" else "rubiksnet"}
                with tracked_run(client, "reps", f"{label}-{seed}", parent_run_id=parent, tags=tags) as rid:
                    client.log_param(rid, "model.name", "tsm-nano" if label == "tsm" else "rubiksnet-nano")
                    log_metrics(client, rid, {"1clip_top1": acc, "gmacs": 0.01 if label != "rn-noisy" else 0.02,
                                              "mparams": 0.1})
        points = sweep_points(client, "reps", parent)
        assert len(points) == 9 and {p["seed"] for p in points} == {"0", "1", "2"}
        log_frontier(client, parent, points)
    run = client.get_run(parent)
    assert run.data.metrics["rn/n"] == 3 and abs(run.data.metrics["rn/1clip_top1_mean"] - 0.81) < 1e-9
    assert run.data.metrics["rn/1clip_top1_ci95"] > 0 and run.data.tags["best_trial"] == "rn"
    for child in client.search_runs([run.info.experiment_id], filter_string=f"tags.`rubiks.point` = 'tsm'"):
        assert child.data.metrics["group_n"] == 3 and abs(child.data.metrics["group_1clip_top1_mean"] - 0.61) < 1e-9
    body = json.load(open(client.download_artifacts(parent, "pareto/conclusions.json", str(tmp_path))))
    verdicts = {frozenset((c["a"], c["b"])): c for c in body["comparisons"]}
    assert verdicts[frozenset(("rn", "tsm"))]["verdict"] == "beats"
    assert verdicts[frozenset(("rn", "rn-noisy"))]["verdict"] == "tied"  # 0.81 vs 0.77 +- wide: within noise
    front = open(client.download_artifacts(parent, "pareto/pareto_gmacs.txt", str(tmp_path))).read()
    assert "rn " in front and "rn-noisy" not in front  # dominated on means: same accuracy band, more GMACs
