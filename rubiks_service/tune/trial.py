"""One tracked training run: MLflow run (a child of a sweep's run when given), Ray Train
fit with live per-epoch metrics, final 1-clip / 2-clip evaluation, cost profile, the
checkpoint and learned-shift plots as artifacts. Used by `rubiks train` and as the
body of every sweep trial."""
from __future__ import annotations

import os
import tempfile

from rubiks_service.models import RubiksNet
from rubiks_service.models.profile import measure_latency, profile_model
from rubiks_service.ops.attention_shift import attention_shift_layers, realised_budget
from rubiks_service.tracking.mlflow_model import log_trained_model
from rubiks_service.tracking.mlflow_store import log_metrics, log_params, make_client, tracked_run
from rubiks_service.tracking.train_callback import MlflowEpochLogger
from rubiks_service.train.config import TrainConfig
from rubiks_service.train.trainer import evaluate, fit, load_checkpoint


def run_tracked_training(cfg: TrainConfig, tracking_uri: str, *, parent_run_id: str | None = None,
                         extra_callbacks: list | None = None, run_name: str | None = None,
                         tags: dict | None = None) -> dict:
    client = make_client(tracking_uri)
    name = run_name or cfg.name
    with tracked_run(client, cfg.experiment, name, parent_run_id=parent_run_id, tags=tags) as run_id:
        log_params(client, run_id, cfg.model_dump())
        outcome = fit(cfg, callbacks=[MlflowEpochLogger(tracking_uri, run_id), *(extra_callbacks or [])],
                      run_name=name)
        if outcome.metrics.get("node_id"):
            client.set_tag(run_id, "rubiks.train_node", outcome.metrics["node_id"])
        if outcome.checkpoint_path is None:
            raise RuntimeError(f"training run {name!r} produced no checkpoint")
        model, _, _ = load_checkpoint(outcome.checkpoint_path)
        summary = {"run_id": run_id, "name": name, "model": cfg.model.name, "variant": cfg.model.variant,
                   "temporal_shift": cfg.model.temporal_shift, "epochs": int(outcome.metrics.get("epoch", 0))}
        summary.update({k: v for k, v in outcome.metrics.items() if k.startswith("val_")})  # the last epoch's
        for protocol in cfg.eval_protocols:  # done by the workers already when the frames were cached
            done = {k: v for k, v in outcome.metrics.items() if k.startswith(f"{protocol}_")}
            summary.update(done or evaluate(model, cfg, outcome.classes, protocol))
        layers = attention_shift_layers(model)
        if layers:
            for layer in layers:  # inference cost is that of the converted model
                layer.convert_()
            summary["realised_budget"] = realised_budget(layers)
        prof = profile_model(model, name=cfg.model.name, frames=cfg.data.segments, size=cfg.data.crop_size)
        summary.update({"params": prof.inference_params, "macs": prof.macs,
                        "gmacs": prof.macs / 1e9, "mparams": prof.inference_params / 1e6})
        # the standard CPU latency of the inference form at the trial's own input size; few repeats, the
        # minimum is the figure (trials share the machine), so it costs the trial a second or two
        summary["latency_ms"] = measure_latency(model, cfg.data.segments, cfg.data.crop_size, warmup=1,
                                                repeats=3)["latency_ms"]
        # val_* were logged per epoch while training ran; the rest are end-of-run figures
        log_metrics(client, run_id, {k: v for k, v in summary.items() if k != "epochs" and not k.startswith("val_")})
        client.log_artifact(run_id, outcome.checkpoint_path, artifact_path="checkpoint")
        # the MLflow model (runs:/<id>/model): converted weights, loadable by mlflow.pyfunc and `rubiks predict`
        summary["model_uri"] = log_trained_model(client, run_id, model, cfg, outcome.classes)
        if isinstance(model, RubiksNet):
            _log_shift_plots(client, run_id, model)
        return summary


def _log_shift_plots(client, run_id: str, model: RubiksNet) -> None:
    from rubiks_service.models.shift_plots import plot_shift_scatter, plot_temporal_histograms

    with tempfile.TemporaryDirectory() as tmp:
        for fn, name in ((plot_temporal_histograms, "temporal_shift_histograms.png"),
                         (plot_shift_scatter, "shift_scatter_3d.png")):
            path = os.path.join(tmp, name)
            fn(model, path)
            client.log_artifact(run_id, path, artifact_path="plots")
