"""A sweep's results in MLflow: its child runs, closing the ones a scheduler killed,
the Pareto frontier (table artifact + PNG) on the parent run, and finding sweeps again."""
from __future__ import annotations

import json
import os
import tempfile

from .pareto import format_table, pareto_front, plot_frontier

PARENT_TAG = "rubiks.sweep"
ACCURACY = "1clip_top1"
COSTS = ("gmacs", "mparams")
TABLE_COLUMNS = ("label", "kind", "model", "1clip_top1", "2clip_top1", "gmacs", "mparams", "realised_budget", "run_id")


def child_runs(client, experiment: str, parent_run_id: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=10_000)


def close_orphaned_children(client, experiment: str, parent_run_id: str) -> int:
    """Trials stopped by the scheduler are killed with their trainer: end their runs FINISHED and
    tag them `stopped_early` (their per-epoch metrics stay). Returns how many were closed."""
    closed = 0
    for run in child_runs(client, experiment, parent_run_id):
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "stopped_early", "true")
            client.set_terminated(run.info.run_id, "FINISHED")
            closed += 1
    return closed


def sweep_points(client, experiment: str, parent_run_id: str) -> list[dict]:
    """One point per child run that finished its final evaluation."""
    points = []
    for run in child_runs(client, experiment, parent_run_id):
        m = run.data.metrics
        if run.info.status != "FINISHED" or ACCURACY not in m or "gmacs" not in m:
            continue
        tags = run.data.tags
        points.append({
            "label": tags.get("rubiks.label", run.info.run_name),
            "kind": tags.get("rubiks.kind", "rubiksnet"),
            "model": run.data.params.get("model.name", ""),
            **{k: m[k] for k in ("1clip_top1", "2clip_top1", "gmacs", "mparams", "realised_budget", "val_top1") if k in m},
            "run_id": run.info.run_id,
        })
    return sorted(points, key=lambda p: p["gmacs"])


def trial_summaries(client, experiment: str, parent_run_id: str) -> list[dict]:
    """Every trial of a sweep, stopped and failed ones included: label, outcome, last val top-1, final top-1."""
    rows = []
    for run in child_runs(client, experiment, parent_run_id):
        tags, m = run.data.tags, run.data.metrics
        outcome = ("failed" if run.info.status == "FAILED" else "stopped early" if tags.get("stopped_early")
                   else "finished" if run.info.status == "FINISHED" else run.info.status.lower())
        rows.append({"label": tags.get("rubiks.label", run.info.run_name), "kind": tags.get("rubiks.kind", ""),
                     "model": run.data.params.get("model.name", ""), "outcome": outcome,
                     "val_top1": m.get("val_top1", float("nan")), "1clip_top1": m.get(ACCURACY, float("nan")),
                     "gmacs": m.get("gmacs", float("nan"))})
    return sorted(rows, key=lambda r: (r["kind"], r["label"]))


def frontier(points: list[dict], cost: str = "gmacs") -> list[dict]:
    return pareto_front(points, accuracy=ACCURACY, cost=cost)


def log_frontier(client, parent_run_id: str, points: list[dict]) -> str | None:
    """Pareto table (markdown-ish text + JSON) and plot as artifacts of the parent run."""
    if not points:
        client.set_tag(parent_run_id, "pareto", "no finished trials")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for cost in COSTS:
            front = frontier(points, cost)
            with open(os.path.join(tmp, f"pareto_{cost}.txt"), "w") as f:
                f.write(format_table(front, TABLE_COLUMNS) + "\n")
        with open(os.path.join(tmp, "pareto.json"), "w") as f:
            json.dump({"points": points, **{f"frontier_{c}": [p["run_id"] for p in frontier(points, c)] for c in COSTS}},
                      f, indent=2)
        plot_frontier(points, os.path.join(tmp, "pareto.png"), accuracy=ACCURACY, costs=COSTS)
        client.log_artifacts(parent_run_id, tmp, artifact_path="pareto")
    best = max(points, key=lambda p: p[ACCURACY])
    client.log_metric(parent_run_id, "best_1clip_top1", best[ACCURACY])
    client.set_tag(parent_run_id, "best_trial", best["label"])
    return f"{client.get_run(parent_run_id).info.artifact_uri}/pareto/pareto.png"


def latest_sweep(client, experiment: str):
    """The most recent sweep (parent) run of an experiment, or None."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = 'parent'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None
