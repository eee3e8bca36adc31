"""The names of the MLflow tags this service sets, and the short names of the settings a sweep's
comparison table shows, defined once.

Runs are found and read back by these names (a sweep's parent and children, a point's replicates,
the job queue's model URI, `rubiks predict`'s resolved model), and users filter by them in the MLflow
UI: renaming one here renames it everywhere, and only here. The values are stored in every run
already logged, so a value changes only with a reader that still accepts the old one.
"""
from __future__ import annotations

# a sweep: its parent run, each child's trial and point
PARENT_TAG = "rubiks.sweep"  # "parent" on a sweep's parent run
TRIAL_TAG = "rubiks.trial"  # Ray Tune's trial name
LABEL_TAG = "rubiks.label"  # the point's label in tables and plots
POINT_TAG = "rubiks.point"  # groups a point's replicate runs
SEED_TAG = "rubiks.seed"
# the point's family on the Pareto plot ("rubiksnet", "tsm", "per-frame", ...); the tag keeps its first
# name, "kind", so runs logged before stay readable
FAMILY_TAG = "rubiks.kind"

# models
MODEL_URI_TAG = "rubiks.model_uri"  # a training run's own model, or on a sweep's parent the best frontier version
MODEL_ID_TAG = "rubiks.model_id"  # a training run's LoggedModel
REGISTERED_MODEL_TAG = "rubiks.registered_model"  # on a sweep's parent run
SWEEP_RUN_TAG = "rubiks.sweep_run"  # on a registered model version: the sweep that registered it

# a training run
JOB_ID_TAG = "rubiks.job_id"  # the queue job that started it
NODE_TAG = "rubiks.train_node"  # where rank 0 ran
INIT_TAG = "rubiks.init_from"  # what model.init_from named
INIT_VERSION_TAG = "rubiks.init_from.version"  # the registered version (name/version) or run it resolved to

# the comparison table's setting columns: short name -> the logged param (a TrainConfig key)
SETTINGS = {"variant": "model.variant", "budget": "aq.budget", "lambda": "model.temporal_factor",
            "grad_norm_form": "model.grad_norm_form", "normalize_grad": "model.normalize_grad",
            "shift_init": "model.shift_init", "fixed_shifts": "model.fixed_shifts", "epochs": "optim.epochs",
            "seed": "seed"}
