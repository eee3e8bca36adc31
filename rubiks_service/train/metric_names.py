"""The names of the metrics a run reports, defined once.

The worker loop reports them, the tracked run logs them to MLflow, a sweep reads them back by
these names (Pareto frontier, comparison table, registered model), and users and the deployment
tests find them in the MLflow UI: renaming one here renames it everywhere, and only here.

Accuracy metrics are `<scope>_<stat>`: scope `train`, `val` (the per-epoch 1-clip check on the
val set) or an evaluation protocol (`1clip`, `2clip`: the end-of-run evaluation); stat one of
ACCURACY_STATS.
"""
from __future__ import annotations

from collections.abc import Mapping

from rubiks_service.data.clip_spec import ClipMode

TRAIN = "train"
VAL = "val"
VAL_PROTOCOL = ClipMode.ONE_CLIP  # how the per-epoch `val_*` check samples and crops
ACCURACY_STATS = ("top1", "top5", "mean_class", "clips")


def accuracy_name(scope: str, stat: str = "top1") -> str:
    """`accuracy_name("2clip") == "2clip_top1"`."""
    if stat not in ACCURACY_STATS:
        raise ValueError(f"unknown accuracy statistic {stat!r}; one of {ACCURACY_STATS}")
    return f"{scope}_{stat}"


def of_scope(metrics: Mapping[str, object], scope: str) -> dict:
    """The accuracy metrics of one scope in `metrics` (e.g. every `2clip_*`), empty if it has none."""
    names = {accuracy_name(scope, stat) for stat in ACCURACY_STATS}
    return {k: v for k, v in metrics.items() if k in names}


VAL_TOP1 = accuracy_name(VAL)
ONE_CLIP_TOP1 = accuracy_name(ClipMode.ONE_CLIP)  # the sweep's accuracy: frontier, registered model
TWO_CLIP_TOP1 = accuracy_name(ClipMode.TWO_CLIP)

# per epoch, reported by the worker loop
EPOCH = "epoch"
TRAIN_LOSS = "train_loss"
LR = "lr"
CLIPS_PER_S = "clips_per_s"
BAD_VIDEOS = "bad_videos"
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # > 0: this attempt continued from a checkpoint
NODE_ID = "node_id"  # where rank 0 ran (multi-node placement)
AQ_TEMPERATURE = "aq_temperature"
REALISED_BUDGET = "realised_budget"  # RS-AQ: the share of non-zero temporal shifts

# costs of the trained model's inference form, logged at the end of a tracked run
PARAMS = "params"
MACS = "macs"
GMACS = "gmacs"
MPARAMS = "mparams"
LATENCY_MS = "latency_ms"
