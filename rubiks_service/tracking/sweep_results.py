"""A sweep's results in MLflow: its child runs, closing the ones a scheduler killed, the points'
replicate groups (`replicates.group_points`: n, mean, 95% interval), the Pareto frontier of the
groups' means (table artifacts + PNG with error bars) and the comparisons on the parent run, and
finding sweeps again."""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import time

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
from .replicates import conclusions, group_points, json_ready
from .tag_names import FAMILY_TAG, LABEL_TAG, PARENT_TAG, POINT_TAG, SEED_TAG, SETTINGS

ACCURACY = ONE_CLIP_TOP1  # the sweep's accuracy: frontier, best trial, registered model
MEAN = f"{ACCURACY}_mean"  # a point's accuracy: the mean over its replicates (frontier, ranking)
CI95 = f"{ACCURACY}_ci95"
LATENCY_RATIO = "latency_ratio"  # a point's latency / the reference model's, timed interleaved
COSTS = (GMACS, MPARAMS)
OPTIONAL_COSTS = (LATENCY_MS,)  # measured per point after the sweep (and by `rubiks train`)
POINT_METRICS = (ONE_CLIP_TOP1, TWO_CLIP_TOP1, GMACS, MPARAMS, REALISED_BUDGET, VAL_TOP1, *OPTIONAL_COSTS,
                 LATENCY_RATIO)
TABLE_COLUMNS = ("label", "kind", "model", "n", MEAN, CI95, f"{TWO_CLIP_TOP1}_mean", GMACS, MPARAMS, "run_id")
# the comparison table (CSV + MLflow table on the parent run): what each trial was and what it got
COMPARISON_COLUMNS = ("label", "kind", "model", *SETTINGS, "n", *(f"{m}_{s}" for m in (ONE_CLIP_TOP1, TWO_CLIP_TOP1, VAL_TOP1)
                                                                 for s in ("mean", "ci95", "std")),
                      GMACS, MPARAMS, LATENCY_MS, LATENCY_RATIO, f"{REALISED_BUDGET}_mean", f"frontier_{GMACS}",
                      f"frontier_{LATENCY_MS}", "run_id")


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
            "label": tags.get(LABEL_TAG, run.info.run_name),
            "point": tags.get(POINT_TAG, tags.get(LABEL_TAG, run.info.run_name)),
            "seed": tags.get(SEED_TAG, params.get("seed", "")),
            "kind": tags.get(FAMILY_TAG, "rubiksnet"),
            "model": params.get("model.name", ""),
            **{k: m[k] for k in POINT_METRICS if k in m},
            "settings": {k: params[p] for k, p in SETTINGS.items() if p in params},
            "run_id": run.info.run_id,
        })
    return sorted(points, key=lambda p: (p[GMACS], p["label"]))


def present_costs(points: list[dict]) -> tuple[str, ...]:
    """GMACs and params always; latency when it was measured."""
    return COSTS[:1] + tuple(c for c in OPTIONAL_COSTS if any(c in p for p in points)) + COSTS[1:]


def comparison_rows(points: list[dict]) -> list[dict]:
    """One row per point (its replicates grouped): its family and settings, n, mean / ci95 / std of
    each accuracy, costs, and whether it is on its family's frontier of means (vs GMACs, and vs
    latency when measured). Rows by family, then cost."""
    points = group_points(points)
    on_front = {}
    for cost in (GMACS, *OPTIONAL_COSTS):
        for kind in {p["kind"] for p in points}:
            family = [p for p in points if p["kind"] == kind and cost in p]
            on_front[cost] = on_front.get(cost, set()) | {p["label"] for p in frontier(family, cost)}
    rows = []
    for p in points:
        row = {"label": p["label"], "kind": p["kind"], "model": p["model"], **_meaningful(p),
               "run_id": ",".join(p["run_ids"])}
        row.update({k: p[k] for k in COMPARISON_COLUMNS if k in p and k not in row})
        for cost in (GMACS, *OPTIONAL_COSTS):
            row[f"frontier_{cost}"] = (p["label"] in on_front[cost]) if cost in p else ""
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
        rows.append({"label": tags.get(LABEL_TAG, run.info.run_name), "kind": tags.get(FAMILY_TAG, ""),
                     "model": run.data.params.get("model.name", ""), "outcome": outcome,
                     **{k: m.get(k, float("nan")) for k in (VAL_TOP1, ACCURACY, GMACS)}})
    return sorted(rows, key=lambda r: (r["kind"], r["label"]))


def frontier(groups: list[dict], cost: str = GMACS) -> list[dict]:
    """The Pareto frontier of replicate groups (`group_points`): mean accuracy against cost."""
    return pareto_front([g for g in groups if cost in g and MEAN in g], accuracy=MEAN, cost=cost)


def log_frontier(client, parent_run_id: str, points: list[dict]) -> str | None:
    """The points' replicate groups and their comparisons as artifacts and metrics of the parent run:
    Pareto tables of the means (text + JSON), the comparison table (CSV + an MLflow table), the
    conclusions (which differences are larger than the seed-to-seed noise) and the plot (one colour
    per family, 95% intervals as error bars). Every child run gets its group's mean, interval and n
    (`group_*` metrics), so the runs table sorts by them."""
    if not points:
        client.set_tag(parent_run_id, "pareto", "no finished trials")
        return None
    groups = group_points(points)
    costs = present_costs(groups)
    rows = comparison_rows(points)
    verdicts = conclusions(groups)
    with tempfile.TemporaryDirectory() as tmp:
        for cost in costs:
            front = frontier(groups, cost)
            with open(os.path.join(tmp, f"pareto_{cost}.txt"), "w") as f:
                f.write(format_table(front, (*TABLE_COLUMNS[:-1], *((cost,) if cost not in COSTS else ()))) + "\n")
        with open(os.path.join(tmp, "pareto.json"), "w") as f:
            json.dump(json_ready({"points": points, "groups": groups,
                                  **{f"frontier_{c}": [g["label"] for g in frontier(groups, c)] for c in costs}}),
                      f, indent=2)
        with open(os.path.join(tmp, "conclusions.txt"), "w") as f:
            f.write("\n".join(c.sentence() for c in verdicts) + "\n")
        write_comparison_csv(rows, os.path.join(tmp, "comparison.csv"))
        plot_frontier(groups, os.path.join(tmp, "pareto.png"), accuracy=MEAN, error=CI95, costs=costs)
        client.log_artifacts(parent_run_id, tmp, artifact_path="pareto")
    columns = [c for c in COMPARISON_COLUMNS if any(c in r for r in rows)]
    client.log_table(parent_run_id, {c: [r.get(c, "") for r in rows] for c in columns}, "pareto/comparison.json")
    client.log_dict(parent_run_id, {"test": verdicts[0].as_dict()["test"] if verdicts else "",
                                    "comparisons": [c.as_dict() for c in verdicts]}, "pareto/conclusions.json")
    _log_group_metrics(client, parent_run_id, groups)
    share_sweep_view(client, parent_run_id)
    best = max(groups, key=lambda g: g[MEAN])
    client.log_metric(parent_run_id, f"best_{MEAN}", best[MEAN])
    client.set_tag(parent_run_id, "best_trial", best["label"])
    return f"{client.get_run(parent_run_id).info.artifact_uri}/pareto/pareto.png"


SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: a runs-table view the MLflow UI opens by `viewStateShareKey`
VIEW_COLUMNS = (f"group_{MEAN}", f"group_{CI95}", "group_n", ACCURACY, GMACS, MPARAMS, LATENCY_MS, LATENCY_RATIO)


def share_sweep_view(client, parent_run_id: str) -> str:
    """Store the view a person wants of a sweep as one of MLflow's shared views (an experiment tag): its
    trials listed flat (a filter on their parent), best point first, the accuracy and cost columns shown.
    Returns the key; the UI opens the view at `...runs?viewStateShareKey=<key>`."""
    state = {"searchFilter": f"tags.mlflow.parentRunId = '{parent_run_id}'",
             "orderByKey": f"metrics.`group_{MEAN}`", "orderByAsc": False,
             "selectedColumns": [f"metrics.`{c}`" for c in VIEW_COLUMNS] + ["tags.`rubiks.point`"]}
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + parent_run_id, json.dumps(state))
    return parent_run_id


def _log_group_metrics(client, parent_run_id: str, groups: list[dict]) -> None:
    """Each child run: its group's n, mean and 95% half-width (`group_1clip_top1_mean`, ...); the parent:
    the same per point, named `<point>/<metric>` (MLflow draws one chart per point)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    parent_metrics = []
    for g in groups:
        values = {"n": g["n"], **{k: g[k] for k in (MEAN, CI95, f"{TWO_CLIP_TOP1}_mean", f"{TWO_CLIP_TOP1}_ci95")
                                  if k in g and g[k] == g[k]}}  # NaN (n = 1) is left out
        for run_id in g["run_ids"]:
            client.log_batch(run_id, metrics=[Metric(f"group_{k}", round(float(v), 4), now, 0) for k, v in values.items()])
        slug = re.sub(r"[^0-9A-Za-z_\-. /]", "_", g["label"])
        parent_metrics += [Metric(f"{slug}/{k}", round(float(v), 4), now, 0) for k, v in values.items()]
    for i in range(0, len(parent_metrics), 900):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(parent_run_id, metrics=parent_metrics[i:i + 900])


def latest_sweep(client, experiment: str):
    """The most recent sweep (parent) run of an experiment, or None."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = 'parent'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None
