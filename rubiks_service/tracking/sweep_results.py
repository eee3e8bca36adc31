"""A sweep's results in MLflow: its child runs, closing the ones a scheduler killed,
the Pareto frontier (table artifact + PNG) on the parent run, and finding sweeps again."""
from __future__ import annotations

import csv
import json
import os
import tempfile

from rubiks_service.models import MODELS
from rubiks_service.train.metric_names import (
    GMACS,
    LATENCY_MS,
    MPARAMS,
    ONE_CLIP_TOP1,
    REALISED_BUDGET,
    TWO_CLIP_TOP1,
    VAL_TOP1,
)

from .pareto import format_table, pareto_front, plot_frontier

PARENT_TAG = "rubiks.sweep"
ACCURACY = ONE_CLIP_TOP1  # the sweep's accuracy: frontier, best trial, registered model
COSTS = (GMACS, MPARAMS)
OPTIONAL_COSTS = (LATENCY_MS,)  # measured per trial where the trial logs it
POINT_METRICS = (ONE_CLIP_TOP1, TWO_CLIP_TOP1, GMACS, MPARAMS, REALISED_BUDGET, VAL_TOP1, *OPTIONAL_COSTS)
TABLE_COLUMNS = ("label", "kind", "model", ONE_CLIP_TOP1, TWO_CLIP_TOP1, GMACS, MPARAMS, REALISED_BUDGET, "run_id")
# the comparison table (CSV + MLflow table on the parent run): what each trial was and what it got
SETTINGS = {"variant": "model.variant", "budget": "aq.budget", "lambda": "model.temporal_factor",
            "grad_norm_form": "model.grad_norm_form", "normalize_grad": "model.normalize_grad",
            "shift_init": "model.shift_init", "fixed_shifts": "model.fixed_shifts", "epochs": "optim.epochs",
            "seed": "seed"}
COMPARISON_COLUMNS = ("label", "kind", "model", *SETTINGS, ONE_CLIP_TOP1, TWO_CLIP_TOP1, VAL_TOP1, GMACS,
                      MPARAMS, LATENCY_MS, REALISED_BUDGET, f"frontier_{GMACS}", f"frontier_{LATENCY_MS}", "run_id")


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
        if run.info.status != "FINISHED" or ACCURACY not in m or GMACS not in m:
            continue
        tags, params = run.data.tags, run.data.params
        points.append({
            "label": tags.get("rubiks.label", run.info.run_name),
            "kind": tags.get("rubiks.kind", "rubiksnet"),
            "model": params.get("model.name", ""),
            **{k: m[k] for k in POINT_METRICS if k in m},
            "settings": {k: params[p] for k, p in SETTINGS.items() if p in params},
            "run_id": run.info.run_id,
        })
    return sorted(points, key=lambda p: (p[GMACS], p["label"]))


def present_costs(points: list[dict]) -> tuple[str, ...]:
    """GMACs and params always; measured latency when the trials logged it."""
    return COSTS[:1] + tuple(c for c in OPTIONAL_COSTS if any(c in p for p in points)) + COSTS[1:]


def comparison_rows(points: list[dict]) -> list[dict]:
    """One row per finished trial: its family and settings, accuracy, costs, and whether it is on its
    family's frontier (vs GMACs, and vs latency when measured). Rows by family, then cost."""
    on_front = {}
    for cost in (GMACS, *OPTIONAL_COSTS):
        for kind in {p["kind"] for p in points}:
            family = [p for p in points if p["kind"] == kind and cost in p]
            on_front[cost] = on_front.get(cost, set()) | {p["run_id"] for p in frontier(family, cost)}
    rows = []
    for p in points:
        row = {"label": p["label"], "kind": p["kind"], "model": p["model"], **_meaningful(p)}
        row.update({k: p[k] for k in COMPARISON_COLUMNS if k in p and k not in row})
        for cost in (GMACS, *OPTIONAL_COSTS):
            row[f"frontier_{cost}"] = (p["run_id"] in on_front[cost]) if cost in p else ""
        rows.append(row)
    order = {k: i for i, k in enumerate(("rubiksnet", "tsm", "per-frame", "baseline"))}
    return sorted(rows, key=lambda r: (order.get(r["kind"], 9), r.get(GMACS, 0), r["label"]))


def _meaningful(point: dict) -> dict:
    """The settings that mean something for this trial: none of the shift ones for a TSM, the budget
    only for RS-AQ (which has no λ, form or init of an interpolated temporal shift)."""
    settings = dict(point.get("settings", {}))
    shift_keys = ("variant", "budget", "lambda", "grad_norm_form", "normalize_grad", "shift_init", "fixed_shifts")
    entry = MODELS.get(str(point["model"]).lower())  # None for a run that logged no model (a crashed trial)
    if entry is not None and entry.family == "tsm":
        return {k: v for k, v in settings.items() if k not in shift_keys}
    if settings.get("variant") == "rs-aq":
        return {k: v for k, v in settings.items() if k not in shift_keys[2:]}
    return {k: v for k, v in settings.items() if k != "budget"}


def write_comparison_csv(rows: list[dict], path: str) -> str:
    columns = [c for c in COMPARISON_COLUMNS if any(c in r and r[c] != "" for r in rows)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def trial_summaries(client, experiment: str, parent_run_id: str) -> list[dict]:
    """Every trial of a sweep, stopped and failed ones included: label, outcome, last val top-1, final top-1."""
    rows = []
    for run in child_runs(client, experiment, parent_run_id):
        tags, m = run.data.tags, run.data.metrics
        outcome = ("failed" if run.info.status == "FAILED" else "stopped early" if tags.get("stopped_early")
                   else "finished" if run.info.status == "FINISHED" else run.info.status.lower())
        rows.append({"label": tags.get("rubiks.label", run.info.run_name), "kind": tags.get("rubiks.kind", ""),
                     "model": run.data.params.get("model.name", ""), "outcome": outcome,
                     **{k: m.get(k, float("nan")) for k in (VAL_TOP1, ACCURACY, GMACS)}})
    return sorted(rows, key=lambda r: (r["kind"], r["label"]))


def frontier(points: list[dict], cost: str = GMACS) -> list[dict]:
    return pareto_front([p for p in points if cost in p], accuracy=ACCURACY, cost=cost)


def log_frontier(client, parent_run_id: str, points: list[dict]) -> str | None:
    """Pareto table (markdown-ish text + JSON), the comparison table (CSV + an MLflow table) and the
    plot (one colour per family, each family's frontier) as artifacts of the parent run."""
    if not points:
        client.set_tag(parent_run_id, "pareto", "no finished trials")
        return None
    costs = present_costs(points)
    rows = comparison_rows(points)
    with tempfile.TemporaryDirectory() as tmp:
        for cost in costs:
            front = frontier(points, cost)
            with open(os.path.join(tmp, f"pareto_{cost}.txt"), "w") as f:
                f.write(format_table(front, TABLE_COLUMNS) + "\n")
        with open(os.path.join(tmp, "pareto.json"), "w") as f:
            json.dump({"points": points, **{f"frontier_{c}": [p["run_id"] for p in frontier(points, c)] for c in costs}},
                      f, indent=2)
        write_comparison_csv(rows, os.path.join(tmp, "comparison.csv"))
        plot_frontier(points, os.path.join(tmp, "pareto.png"), accuracy=ACCURACY, costs=costs)
        client.log_artifacts(parent_run_id, tmp, artifact_path="pareto")
    columns = [c for c in COMPARISON_COLUMNS if any(c in r for r in rows)]
    client.log_table(parent_run_id, {c: [r.get(c, "") for r in rows] for c in columns}, "pareto/comparison.json")
    best = max(points, key=lambda p: p[ACCURACY])
    client.log_metric(parent_run_id, f"best_{ACCURACY}", best[ACCURACY])
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
