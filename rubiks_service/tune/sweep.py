"""A sweep: Ray Tune trials, each a tracked Ray Train run, under one MLflow parent run.

    Tuner(function trainable)                       (driver; ASHA on val_top1 per epoch; a second Tuner
                                                  for the points that start from the first's models)
      trial.run_trial: run_tracked_training(cfg)    (child MLflow run, nested TorchTrainer)
               TorchTrainer(..., callbacks=[TuneReportCallback])  -> epoch metrics reach ASHA

In Ray 2.60 `Tuner(trainer)` is gone; a trial is a function that runs its own
TorchTrainer, and Train's reports reach Tune through `TuneReportCallback`. A trial
stopped early by ASHA is killed with its trainer, so its child run is closed by
the driver afterwards (FINISHED with tag `stopped_early`, or FAILED with the
error). Then, with no trial running, the driver times every point apart (`point_latency`), and
the parent run gets the replicate groups, the conclusions and the Pareto frontier of the means
(tables + PNG).
"""
from __future__ import annotations

from dataclasses import dataclass

from rubiks_service import storage as object_storage
from rubiks_service.redact import UserError
from rubiks_service.tracking.mlflow_model import register_frontier
from rubiks_service.tracking.mlflow_store import (
    default_artifact_root,
    log_params,
    make_client,
    resolve_tracking_uri,
    tracked_run,
)
from rubiks_service.tracking.replicates import conclusions, group_points, json_ready
from rubiks_service.tracking.sweep_results import (
    close_orphaned_children,
    log_frontier,
    sweep_points,
    trial_summaries,
)
from rubiks_service.tracking.tag_names import PARENT_TAG
from rubiks_service.train.metric_names import EPOCH

from .point_latency import measure_points
from .space import LoadedSpace
from .trial import run_trial


@dataclass
class SweepOutcome:
    parent_run_id: str
    experiment: str
    points: list[dict]  # one per finished trial: label, point, seed, accuracy, costs
    groups: list[dict]  # one per point: n, <metric>_mean / _ci95 / _std, costs, latency
    conclusions: list[dict]  # the comparisons: which point beats which, or ties (replicates.conclusions)
    trials: int
    errors: int
    frontier_png: str | None
    trials_table: list[dict]  # every trial: outcome, last val top-1, final top-1
    registered: dict | None = None  # the frontier as a registered MLflow model (name, versions, aliases)
    report: str | None = None  # the sweep report (HTML) on the parent run


def _check_room_for_reads(space, base) -> None:
    """Trials that read frame shards each start Ray Data reads whose file listing is a task of one whole
    CPU; when the trials side by side hold all but less than one of the cluster's CPUs, no listing can
    ever start and the sweep would wait forever. Refused up front, in one line."""
    import ray

    if not (base.data.train_frames or base.data.val_frames) or base.data.hold_in_worker:
        return  # no frame shards, or the trials' workers read them without Ray Data
    cpus = ray.cluster_resources().get("CPU", 0.0)
    held = space.max_concurrent_trials * base.scaling.num_workers * base.scaling.cpus_per_worker
    if cpus - held < 1.0:
        raise UserError(f"{space.max_concurrent_trials} trials side by side hold {held:g} of the cluster's "
                        f"{cpus:g} CPUs, leaving less than the one CPU Ray Data needs to list frame shards: "
                        f"lower scaling.cpus_per_worker or max_concurrent_trials")


def started_points(second_stage: list[dict], finished: list[dict]) -> tuple[list[dict], list[dict]]:
    """(trials to run, trials skipped) of the second stage: each trial starts from the finished trial of
    its `start_from` point with the same seed (`model.init_from: runs:/<run>/model`); a trial whose start
    did not finish is skipped."""
    by_seed = {(p["point"], str(p["seed"])): p["run_id"] for p in finished}
    by_point = {p["point"]: p["run_id"] for p in finished}  # without `seeds`: a point's one trial
    started, skipped = [], []
    for trial in second_stage:
        if trial["seed"] is None:
            run_id = by_point.get(trial["start_from"])
        else:
            run_id = by_seed.get((trial["start_from"], str(trial["seed"])))
        if run_id is None:
            skipped.append(trial)
        else:
            started.append({**trial, "set": {**trial["set"], "model.init_from": f"runs:/{run_id}/model"}})
    return started, skipped


def run_sweep(loaded: LoadedSpace, *, tracking_uri: str | None = None, storage_path: str | None = None,
              verbose: int = 0, progress_stream=None) -> SweepOutcome:
    """Run every trial of the space; the caller has started Ray (with the dashboard: see `ray_session`).
    `progress_stream`: where the progress display goes (None: no display)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    space = loaded.space
    base = loaded.trial_config({})
    storage = object_storage.resolve(storage_path or base.storage_path)  # a folder, or s3://bucket/prefix
    uri = resolve_tracking_uri(tracking_uri, storage)
    experiment = base.experiment
    client = make_client(uri)
    epochs = max(loaded.trial_config(p["set"]).optim.epochs for p in space.grid_points())
    _check_room_for_reads(space, base)

    def scheduler():  # one per Tuner: a scheduler keeps the results of the trials it has seen
        if space.scheduler.type == "asha":
            # max_t beyond the last epoch: the final report (after evaluation) must not be cut off
            return ASHAScheduler(time_attr=EPOCH, grace_period=space.scheduler.grace_period,
                                 reduction_factor=space.scheduler.reduction_factor, max_t=epochs + 1)
        return FIFOScheduler()

    tune_path, tune_filesystem = object_storage.ray_storage(object_storage.join(storage, "tune"))
    with tracked_run(client, experiment, space.name, tags={PARENT_TAG: "parent"},
                     artifact_root=default_artifact_root(uri, storage)) as parent:
        log_params(client, parent, {"space": space.model_dump(), "base": loaded.base_raw})
        where = {"storage": storage, "tracking_uri": uri, "experiment": experiment, "parent": parent}
        trainable = tune.with_parameters(run_trial, loaded=loaded, where=where)
        display = None
        if progress_stream is not None:
            from .progress import SweepProgress

            display = SweepProgress(len(space.grid_points()) * space.num_samples, progress_stream)

        def fit(name: str, trial_points: list[dict]):
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"CPU": 0.01}),  # a token: the nested trainer reserves the real CPUs
                param_space=loaded.param_space(trial_points),
                tune_config=tune.TuneConfig(metric=space.metric, mode=space.mode, scheduler=scheduler(),
                                            num_samples=space.num_samples,
                                            max_concurrent_trials=space.max_concurrent_trials),
                run_config=tune.RunConfig(name=name, storage_path=tune_path,
                                          storage_filesystem=tune_filesystem, verbose=verbose,
                                          callbacks=[display] if display else None),
            )
            results = tuner.fit()
            close_orphaned_children(client, experiment, parent)
            return results

        skipped: list[dict] = []
        try:
            grid = list(fit(space.name, space.grid_points(stage=1)))
            if space.stages == 2:  # the points that start from the first stage's trained models
                started, skipped = started_points(space.grid_points(stage=2),
                                                  sweep_points(client, experiment, parent))
                if display:
                    display.skip(skipped)
                if started:
                    grid += list(fit(f"{space.name}-started", started))
        finally:
            if display:
                display.close()
        errors = sum(1 for r in grid if r.error is not None) + len(skipped)
        points = sweep_points(client, experiment, parent)
        if space.latency.measure:
            log_params(client, parent, {"latency": {**space.latency.model_dump(), "batch": 1, "form": "fastest",
                                                    "method": "after the sweep, one point at a time, interleaved "
                                                              "with the reference; minimum over rounds"}})
            if progress_stream is not None:
                print(f"timing {len({p['point'] for p in points})} points apart, each against {space.latency.reference}",
                      file=progress_stream, flush=True)
            measure_points(client, points, space.latency)
        png = log_frontier(client, parent, points)
        registered = register_frontier(client, experiment, parent, points)
        table = trial_summaries(client, experiment, parent)
        groups = group_points(points)
        verdicts = [c.as_dict() for c in conclusions(groups)]
        report = _report(client, parent, space.name, points, groups, verdicts)
    return SweepOutcome(parent, experiment, json_ready(points), json_ready(groups), json_ready(verdicts),
                        len(grid) + len(skipped),
                        errors, png, table, registered, report)


def _report(client, parent: str, name: str, points: list[dict], groups: list[dict], verdicts: list[dict]) -> str | None:
    """The sweep report's URI, or None (no finished point; or it could not be written: the sweep's results
    stand without it, and the parent run's tag `report_error` says why)."""
    if not points:
        return None
    from .report import log_sweep_report

    try:
        path = log_sweep_report(client, parent, f"Sweep {name!r}", points, groups, verdicts)
    except Exception as exc:  # noqa: BLE001
        client.set_tag(parent, "report_error", f"{type(exc).__name__}: {exc}"[:500])
        return None
    return f"{client.get_run(parent).info.artifact_uri}/{path}"
