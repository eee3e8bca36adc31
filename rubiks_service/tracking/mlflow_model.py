"""Trained models in MLflow: the pyfunc model a training run logs, and the registered model a
sweep's Pareto frontier becomes.

A run's model (`runs:/<run_id>/model`) is a python_function model logged as code
(`pyfunc_model.py`) with one artifact, `checkpoint`: the training checkpoint format (config and
classes inside, no optimizer) of the converted model (RS-AQ -> integer shifts), readable with
weights_only=True. Its pip requirements name this package, whose compiled ops the model needs.

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

from rubiks_service.train.config import TrainConfig
from rubiks_service.train.metric_names import GMACS
from rubiks_service.train.model_factory import model_payload

from .replicates import group_points
from .sweep_results import ACCURACY, CI95, MEAN, frontier
from .tag_names import LABEL_TAG, MODEL_URI_TAG, REGISTERED_MODEL_TAG, SWEEP_RUN_TAG

ARTIFACT_PATH = "model"
CHECKPOINT_ARTIFACT = "checkpoint"  # the pyfunc artifact with the weights (serving reads only this)
ALIASES = {"best-accuracy": "most accurate frontier point", "cheapest": "fewest GMACs on the frontier"}
PYFUNC_CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyfunc_model.py")


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    import mlflow
    import pandas

    return [f"rubiks-service=={version('rubiks-service')}", f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pandas.__version__}"]


def model_signature(frames: int, size: int, classes: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, frames, 3, size, size))]),
                          outputs=Schema([ColSpec("double", name) for name in classes]))


def log_trained_model(client, run_id: str, model: nn.Module, cfg: TrainConfig, classes: list[str]) -> str:
    """Log `model` (trained, AQ layers converted) as the run's MLflow model; tag and return its URI."""
    import mlflow.pyfunc

    frames, size = cfg.data.segments, cfg.data.crop_size
    with tempfile.TemporaryDirectory(prefix="rubiks-mlflow-model-") as tmp:
        ckpt = os.path.join(tmp, "checkpoint.pt")
        torch.save(model_payload(model, cfg, config=cfg.model_dump(), classes=list(classes)), ckpt)
        local = os.path.join(tmp, ARTIFACT_PATH)
        mlflow.pyfunc.save_model(
            local, python_model=PYFUNC_CODE, artifacts={CHECKPOINT_ARTIFACT: ckpt},
            signature=model_signature(frames, size, list(classes)),
            input_example=np.zeros((1, frames, 3, size, size), np.float32),
            pip_requirements=pip_requirements(),
            metadata={"rubiks.model": cfg.model.name, "rubiks.variant": cfg.model.variant, "frames": frames,
                      "crop_size": size, "classes": list(classes)},
        )
        client.log_artifacts(run_id, local, artifact_path=ARTIFACT_PATH)
    uri = f"runs:/{run_id}/{ARTIFACT_PATH}"
    client.set_tag(run_id, MODEL_URI_TAG, uri)
    return uri


def registered_model_name(experiment: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", experiment).strip("-") or "rubiks"


def register_frontier(client, experiment: str, parent_run_id: str, points: list[dict]) -> dict | None:
    """One model version per point on the frontier of replicate means (runs that logged a model): the
    point's most accurate replicate, tagged with the point's mean and interval; aliases `best-accuracy`
    (highest mean) and `cheapest`; tags the parent run with the best-accuracy version's URI. None if
    nothing to register."""
    from mlflow.exceptions import MlflowException

    versions = []
    trials = {p["run_id"]: p for p in points}
    for group in frontier(group_points(points)):
        point = max((trials[r] for r in group["run_ids"]), key=lambda p: p[ACCURACY])
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
        mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
                                         run_id=point["run_id"], tags=tags)
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
