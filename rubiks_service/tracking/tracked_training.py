"""One tracked training run, the body of `rubiks train` and of every sweep trial:

    an MLflow run (a child of a sweep's run when given), its config as params
      -> Ray Train fit, each epoch's metrics logged live (MlflowEpochLogger)
      -> the final checkpoint reloaded and put in the form that is served (RS-AQ converted to
         integer shifts), so the accuracy and cost logged are those of the model a user takes away
      -> the end-of-run protocols the workers did not evaluate decoded afresh on the driver
      -> cost of the inference form (params, MACs, latency)
      -> the MLflow model (a LoggedModel) logged, then the end-of-run metrics (at the last epoch's step,
         against the model too), per-class accuracy and confusion matrices, the checkpoint and
         learned-shift plots

Returns the run's summary (what `rubiks train` prints).
"""
from __future__ import annotations

import os
import tempfile

from torch import nn

from rubiks_service import storage
from rubiks_service.models import RubiksNet
from rubiks_service.models.profile import measure_latency, profile_model
from rubiks_service.ops.attention_shift import convert_attention_shifts, realised_budget
from rubiks_service.train import metric_names as names
from rubiks_service.train.config import TrainConfig
from rubiks_service.train.trainer import TrainOutcome, evaluate_counts, fit, load_trained_model

from .class_results import log_class_results
from .init_source import log_init_source, resolve_init_from
from .mlflow_model import log_trained_model
from .mlflow_store import default_artifact_root, log_metrics, log_params, make_client, tracked_run
from .tag_names import NODE_TAG
from .train_callback import MlflowEpochLogger


def run_tracked_training(cfg: TrainConfig, tracking_uri: str, *, parent_run_id: str | None = None,
                         extra_callbacks: list | None = None, run_name: str | None = None,
                         tags: dict | None = None, latency: bool = True) -> dict:
    """`latency=False` (a sweep's trials, which share the machine): no latency is measured here; the
    sweep measures each point apart after every trial has ended."""
    client = make_client(tracking_uri)
    name = run_name or cfg.name
    init = resolve_init_from(cfg, tracking_uri)  # a bad model.init_from fails here: no run, no worker started
    with tracked_run(client, cfg.experiment, name, parent_run_id=parent_run_id, tags=tags,
                     artifact_root=default_artifact_root(tracking_uri, cfg.storage_path)) as run_id:
        log_params(client, run_id, cfg.model_dump())
        log_init_source(client, run_id, init)
        outcome = fit(cfg, callbacks=[MlflowEpochLogger(tracking_uri, run_id), *(extra_callbacks or [])],
                      run_name=name, init_state=init.state if init else None)
        if outcome.metrics.get(names.NODE_ID):
            client.set_tag(run_id, NODE_TAG, outcome.metrics[names.NODE_ID])
        if outcome.checkpoint_path is None:
            raise RuntimeError(f"training run {name!r} produced no checkpoint")
        model, _, _ = load_trained_model(outcome.checkpoint_path)
        summary = {"run_id": run_id, "name": name, "model": cfg.model.name, "variant": cfg.model.variant,
                   "temporal_shift": cfg.model.temporal_shift, "epochs": int(outcome.metrics.get(names.EPOCH, 0))}
        last_val = names.of_scope(outcome.metrics, names.VAL)  # the last epoch's check, logged per epoch
        summary.update(last_val)
        summary.update(to_served_form(model))
        accuracy, confusion = final_accuracy(model, cfg, outcome)
        summary.update(accuracy)
        summary.update(inference_cost(model, cfg, latency=latency))
        step = summary["epochs"]  # the final metrics are one point where the epoch charts end, not at step 0
        # the MLflow model (runs:/<id>/model, a LoggedModel): converted weights, loadable by mlflow.pyfunc and
        # `rubiks predict`; logged first, so the final metrics are logged against it too (the Models tab)
        summary["model_uri"], model_id = log_trained_model(client, run_id, model, cfg, outcome.classes, step=step)
        log_metrics(client, run_id, {k: v for k, v in summary.items() if k != "epochs" and k not in last_val},
                    step=step, model_id=model_id)
        log_class_results(client, run_id, confusion, outcome.classes)
        log_artifacts(client, run_id, outcome.checkpoint_path, model)
        return summary


def final_accuracy(model: nn.Module, cfg: TrainConfig, outcome: TrainOutcome) -> tuple[dict, dict]:
    """`<protocol>_*` of every evaluation protocol of the run and its confusion matrix: as the workers
    reported them after the last epoch, else decoded afresh here."""
    results, confusion = {}, {}
    for protocol in cfg.eval_protocols:
        reported = names.of_scope(outcome.metrics, protocol)
        if reported and str(protocol) in outcome.confusion:
            results.update(reported)
            confusion[str(protocol)] = outcome.confusion[str(protocol)]
            continue
        counts = evaluate_counts(model, cfg, outcome.classes, protocol)
        results.update(counts.result(protocol))
        confusion[str(protocol)] = counts.confusion()
    return results, confusion


def to_served_form(model: nn.Module) -> dict:
    """RS-AQ's attention shifts hard-maxed to integer shifts, in place (a no-op for other models);
    the realised budget of the converted layers."""
    layers = convert_attention_shifts(model)
    return {names.REALISED_BUDGET: realised_budget(layers)} if layers else {}


def inference_cost(model: nn.Module, cfg: TrainConfig, latency: bool = True) -> dict:
    """Params, MACs and (`latency`) the standard CPU latency of the model's inference form."""
    summary = {}
    prof = profile_model(model, name=cfg.model.name, frames=cfg.data.segments, size=cfg.data.crop_size)
    summary.update({names.PARAMS: prof.inference_params, names.MACS: prof.macs,
                    names.GMACS: prof.macs / 1e9, names.MPARAMS: prof.inference_params / 1e6})
    if not latency:
        return summary
    # at the run's own input size; few repeats, the minimum is the figure, so it costs a second or two
    summary[names.LATENCY_MS] = measure_latency(model, cfg.data.segments, cfg.data.crop_size, warmup=1,
                                                repeats=3)["latency_ms"]
    return summary


def log_artifacts(client, run_id: str, checkpoint_path: str, model: nn.Module) -> None:
    """The training checkpoint, and a RubiksNet's learned-shift plots."""
    with storage.local_copy(checkpoint_path) as local:  # a checkpoint in a bucket comes down once for MLflow
        client.log_artifact(run_id, local, artifact_path="checkpoint")
    if isinstance(model, RubiksNet):
        _log_shift_plots(client, run_id, model)


def _log_shift_plots(client, run_id: str, model: RubiksNet) -> None:
    from rubiks_service.models.shift_plots import plot_shift_scatter, plot_temporal_histograms

    with tempfile.TemporaryDirectory() as tmp:
        for fn, name in ((plot_temporal_histograms, "temporal_shift_histograms.png"),
                         (plot_shift_scatter, "shift_scatter_3d.png")):
            path = os.path.join(tmp, name)
            fn(model, path)
            client.log_artifact(run_id, path, artifact_path="plots")
