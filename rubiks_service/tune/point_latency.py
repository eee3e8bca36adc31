"""Latency for a sweep's frontier, measured apart: after every trial has ended, the driver times each
point's trained model (one replicate's checkpoint, in the form that is served) one point at a time,
interleaved with a fixed reference model at the same input size
(`models.profile.measure_latency_vs_reference`), and logs `latency_ms` and `latency_ratio` (model /
reference) on every replicate run of the point. Trials share the machine while they run, so their own
timings were never comparable."""
from __future__ import annotations

import tempfile

import torch

from rubiks_service.models import build_model
from rubiks_service.models.profile import measure_latency_vs_reference
from rubiks_service.ops.attention_shift import convert_attention_shifts
from rubiks_service.tracking.replicates import group_points
from rubiks_service.tracking.sweep_results import LATENCY_RATIO
from rubiks_service.train.metric_names import LATENCY_MS
from rubiks_service.train.trainer import load_trained_model

from .space import LatencySettings

CHECKPOINT_ARTIFACT = "checkpoint/checkpoint.pt"


def measure_points(client, points: list[dict], settings: LatencySettings) -> dict[str, dict]:
    """Time every point of a finished sweep (its first replicate with a checkpoint); log the figures on
    each replicate run and add them to `points` in place. Returns {point label: measurement}."""
    measured = {}
    for group in group_points(points):
        record = _measure_group(client, group, settings)
        if record is None:
            continue
        measured[group["label"]] = record
        for p in points:
            if p["run_id"] in group["run_ids"]:
                # rounded as a person reads them (the UI shows what is logged, to the last digit)
                p[LATENCY_MS], p[LATENCY_RATIO] = round(record["latency_ms"], 2), round(record["ratio_to_reference"], 3)
                client.log_metric(p["run_id"], LATENCY_MS, p[LATENCY_MS])
                client.log_metric(p["run_id"], LATENCY_RATIO, p[LATENCY_RATIO])
    return measured


def _measure_group(client, group: dict, settings: LatencySettings) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        for run_id in group["run_ids"]:
            try:
                path = client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, tmp)
            except Exception:  # a run without its checkpoint (deleted artifacts): try the next replicate
                continue
            model, cfg, classes = load_trained_model(path)
            convert_attention_shifts(model)  # the served form: RS-AQ as integer shifts
            torch.manual_seed(0)  # the reference's weights do not change its time, but keep it one model
            reference = build_model(settings.reference, num_classes=len(classes), num_frames=cfg.data.segments).eval()
            record = measure_latency_vs_reference(model, reference, cfg.data.segments, cfg.data.crop_size,
                                                  warmup=settings.warmup, rounds=settings.rounds)
            return {**record, "reference": settings.reference, "run_id": run_id}
    return None
