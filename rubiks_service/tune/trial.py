"""One Ray Tune trial: the space's point -> its TrainConfig -> a tracked training run (a child MLflow
run of the sweep's), whose per-epoch reports reach Tune's scheduler through `TuneReportCallback`,
then the run's numeric summary as the trial's final result.

A trial's run is tagged with its point (`rubiks.point`, shared by the point's replicates) and seed.
It logs no latency: trials share the machine, so the driver times every point after the sweep."""
from __future__ import annotations

from rubiks_service.tracking.tag_names import FAMILY_TAG, LABEL_TAG, POINT_TAG, SEED_TAG, TRIAL_TAG
from rubiks_service.tracking.tracked_training import run_tracked_training
from rubiks_service.train import metric_names as names

from .space import LoadedSpace, family

DONE = "done"  # Tune's own name for a trial's last result


def run_trial(config: dict, loaded: LoadedSpace, where: dict) -> None:
    """Body of one Tune trial (runs in a Tune actor). `where`: storage, tracking URI, experiment, parent run."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    point = config["point"]
    cfg = loaded.trial_config({**point["set"], **config.get("sampled", {})})
    cfg = cfg.model_copy(update={"storage_path": where["storage"], "experiment": where["experiment"]})
    trial_name = tune.get_context().get_trial_name()
    tags = {TRIAL_TAG: trial_name, LABEL_TAG: point["label"], FAMILY_TAG: point.get("kind") or family(cfg),
            POINT_TAG: point.get("point", point["label"])}
    run_name = f"{point['label']}-{trial_name}"
    if point.get("seed") is not None:
        tags[SEED_TAG] = str(point["seed"])
        run_name = f"{point['label']}-seed{point['seed']}-{trial_name}"
    summary = run_tracked_training(cfg, where["tracking_uri"], parent_run_id=where["parent"],
                                   extra_callbacks=[TuneReportCallback()], run_name=run_name, tags=tags,
                                   latency=False)
    tune.report({k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
                | {names.EPOCH: summary["epochs"], DONE: True})
