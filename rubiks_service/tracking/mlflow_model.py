"""Trained models in MLflow: the pyfunc model a training run logs, and the registered model a
sweep's Pareto frontier becomes.

A run's model is an MLflow 3 LoggedModel named `model` (the experiment's Models tab; the run's
outputs link to it, and its final metrics are logged against it), so `runs:/<run_id>/model` finds
it. It is a python_function model logged as code (`pyfunc_model.py`) with one artifact,
`checkpoint`: the training checkpoint format (config and classes inside, no optimizer) of the
converted model (RS-AQ -> integer shifts), readable with weights_only=True. Its pip requirements
name this package, whose compiled ops the model needs. Its signature names the output columns (the
classes) but no input schema: MLflow's tensor schema has one fixed rank (the model takes one view
or several) and its enforcement error prints the whole input; the model checks shapes itself.

A sweep registers its frontier (1-clip top-1 vs GMACs): a registered model named after the
experiment, one version per frontier point, aliases `best-accuracy` and `cheapest`. The sweep's
parent run and every training run carry tag `rubiks.model_uri`.
"""
from __future__ import annotations

import os
import re
import tempfile

import numpy as np
import torch
from torch import nn

from rubiks_service.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rubiks_service.train.config import TrainConfig
from rubiks_service.train.metric_names import GMACS
from rubiks_service.train.model_factory import model_payload

from .replicates import best_replicate, group_points
from .sweep_results import ACCURACY, CI95, MEAN, frontier
from .mlflow_store import flatten
from .tag_names import LABEL_TAG, MODEL_ID_TAG, MODEL_URI_TAG, REGISTERED_MODEL_TAG, SWEEP_RUN_TAG

ARTIFACT_PATH = "model"
CHECKPOINT_ARTIFACT = "checkpoint"  # the pyfunc artifact with the weights (serving reads only this)
ALIASES = {"best-accuracy": "most accurate frontier point", "cheapest": "fewest GMACs on the frontier"}
MODEL_TYPE = "rubiks-video-classifier"  # the LoggedModel's type, to search and compare them by
PYFUNC_CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyfunc_model.py")


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    import mlflow
    import pandas

    return [f"rubiks-service=={version('rubiks-service')}", f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pandas.__version__}"]


def model_signature(classes: list[str]):
    """Outputs only (one probability column per class); the input is described in the metadata."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=None, outputs=Schema([ColSpec("double", name) for name in classes]))


def model_metadata(cfg: TrainConfig, classes: list[str]) -> dict:
    frames, size = cfg.data.segments, cfg.data.crop_size
    return {"rubiks.model": cfg.model.name, "rubiks.variant": cfg.model.variant, "frames": frames,
            "crop_size": size, "classes": list(classes),
            "input": f"float32 clips (N, {frames}, 3, {size}, {size}) or (N, V, {frames}, 3, {size}, {size}) with V "
                     "views averaged; RGB in [0, 1] normalised with the ImageNet mean/std",
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def log_trained_model(client, run_id: str, model: nn.Module, cfg: TrainConfig, classes: list[str], *,
                      step: int = 0) -> tuple[str, str]:
    """Log `model` (trained, AQ layers converted) as the run's MLflow model: a LoggedModel linked to the
    run's output at `step` (its last epoch). Tags the run; returns (`runs:/<run_id>/model`, the model id)."""
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    frames, size = cfg.data.segments, cfg.data.crop_size
    metadata = model_metadata(cfg, classes)
    logged = client.create_logged_model(
        client.get_run(run_id).info.experiment_id, name=ARTIFACT_PATH, source_run_id=run_id,
        params=flatten(cfg.model_dump()), model_type=MODEL_TYPE,
        tags={"rubiks.model": cfg.model.name, "rubiks.variant": cfg.model.variant, "frames": str(frames),
              "crop_size": str(size)})
    try:
        with tempfile.TemporaryDirectory(prefix="rubiks-mlflow-model-") as tmp:
            ckpt = os.path.join(tmp, "checkpoint.pt")
            torch.save(model_payload(model, cfg, config=cfg.model_dump(), classes=list(classes)), ckpt)
            local = os.path.join(tmp, ARTIFACT_PATH)
            mlflow.pyfunc.save_model(
                local, python_model=PYFUNC_CODE, artifacts={CHECKPOINT_ARTIFACT: ckpt},
                mlflow_model=Model(artifact_path=logged.artifact_location, run_id=run_id, model_id=logged.model_id,
                                   model_uuid=logged.model_id),
                signature=model_signature(list(classes)),
                input_example=np.zeros((1, frames, 3, size, size), np.float32),
                pip_requirements=pip_requirements(), metadata=metadata,
            )
            client.log_model_artifacts(logged.model_id, local)
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=step)])
    uri = f"runs:/{run_id}/{ARTIFACT_PATH}"  # MLflow finds the run's LoggedModel by its name
    client.set_tag(run_id, MODEL_URI_TAG, uri)
    client.set_tag(run_id, MODEL_ID_TAG, logged.model_id)
    return uri, logged.model_id


def registered_model_name(experiment: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", experiment).strip("-") or "rubiks"


def register_frontier(client, experiment: str, parent_run_id: str, points: list[dict]) -> dict | None:
    """One model version per point on the frontier of replicate means (runs that logged a model): the
    point's most accurate replicate, tagged with the point's mean and interval; aliases `best-accuracy`
    (highest mean) and `cheapest`; tags the parent run with the best-accuracy version's URI. None if
    nothing to register."""
    from mlflow.exceptions import MlflowException

    versions = []
    for group in frontier(group_points(points)):
        point = best_replicate(points, group)
        point = {**point, MEAN: group[MEAN], CI95: group[CI95], "n": group["n"]}
        run = client.get_run(point["run_id"])
        if MODEL_URI_TAG not in run.data.tags:
            continue  # a run from before models were logged
        if not versions:
            name = registered_model_name(experiment)
            try:
                client.create_registered_model(name, description=f"Pareto frontier (1-clip top-1 vs GMACs) of "
                                                                 f"the sweeps in experiment {experiment!r}")
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        tags = {SWEEP_RUN_TAG: parent_run_id, LABEL_TAG: point["label"],
                ACCURACY: str(point[ACCURACY]), MEAN: str(point[MEAN]), CI95: str(point[CI95]), "n": str(point["n"]),
                GMACS: str(point[GMACS])}
        model_id = run.data.tags.get(MODEL_ID_TAG)  # none: a run that logged its model as run artifacts
        # the LoggedModel's folder (a `models:/<model_id>` source is looked up in the default store, not this one)
        source = (client.get_logged_model(model_id).artifact_location if model_id
                  else f"{run.info.artifact_uri}/{ARTIFACT_PATH}")
        mv = client.create_model_version(name, source=source, run_id=point["run_id"], tags=tags, model_id=model_id)
        versions.append({**point, "version": int(mv.version)})
    if not versions:
        return None
    best = max(versions, key=lambda v: (v[MEAN], -v[GMACS]))
    cheapest = min(versions, key=lambda v: (v[GMACS], -v[MEAN]))
    client.set_registered_model_alias(name, "best-accuracy", str(best["version"]))
    client.set_registered_model_alias(name, "cheapest", str(cheapest["version"]))
    uri = f"models:/{name}/{best['version']}"
    client.set_tag(parent_run_id, MODEL_URI_TAG, uri)
    client.set_tag(parent_run_id, REGISTERED_MODEL_TAG, name)
    return {"name": name, "model_uri": uri, "versions": versions,
            "aliases": {"best-accuracy": best["version"], "cheapest": cheapest["version"]}}
