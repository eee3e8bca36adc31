"""Search-space files (`tune_spaces/*.yaml`): parsed, validated, turned into Tune's param space.

    name: motion-budget                  # sweep name (MLflow parent run, Ray storage folder)
    base: ../configs/motion-demo.yaml    # the training config every trial starts from
    set: {optim.epochs: 5}               # overrides applied to every trial
    search:                              # dotted training-config keys -> one distribution each
      aq.budget: {grid: [0.25, 0.5]}
      model.name: {grid: [rubiksnet-nano, rubiksnet-micro]}
      optim.lr: {loguniform: [0.001, 0.01]}
    extra_trials:                        # fixed points run besides the grid
      - {name: per-frame, set: {model.temporal_shift: false}}   # kind (family): from the config, or given
      - {name: RS-AQ from RS, set: {model.variant: rs-aq}, start_from: rubiksnet-nano}
    seeds: [0, 1, 2]                     # replicates: every point runs once per seed (grouped in MLflow)
    num_samples: 1                       # repeats of the grid (random keys re-drawn each time)
    max_concurrent_trials: 2
    scheduler: {type: asha, grace_period: 2, reduction_factor: 2}   # or {type: fifo}
    metric: val_top1
    mode: max
    latency: {reference: tsm-nano, rounds: 7}   # measured after the sweep, one point at a time

Grid keys are expanded here into explicit trial points (so extra trials are extra
points, not multiplied with the grid); choice/uniform/loguniform keys are left
to Tune to sample. With `seeds`, every point (grid or extra) runs once per seed: its trials share
the point's label (tag `rubiks.point`) and are summarised as one group (n, mean, 95% interval);
sampled keys would differ between a point's replicates, so `seeds` takes grid values only. ASHA
judges every replicate as a trial of its own (a stopped replicate is left out of its group's n).
An extra trial with `start_from: <point>` is fine-tuned from that point's trained model of the same seed
(`model.init_from: runs:/<its run>/model`): the sweep runs such trials after the others, as a second
stage; a replicate whose starting trial did not finish does not run.
Every key and every value a trial could get is checked
against the training config before anything starts: an unknown key or a value
of the wrong type or range is a `ConfigError` naming the file and the key.
"""
from __future__ import annotations

import itertools
import os
from typing import Any, Literal

from pydantic import Field, model_validator

from rubiks_service.config_files import ConfigError, StrictModel, beside, read_yaml, validate_as
from rubiks_service.models import FAMILIES as MODEL_FAMILIES
from rubiks_service.models import MODEL_NAMES
from rubiks_service.train import metric_names as names
from rubiks_service.train.config import TrainConfig, load_config

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform")


class Distribution(StrictModel):
    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in DISTRIBUTIONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DISTRIBUTIONS)} (got {given or 'none'})")
        kind = given[0]
        value = getattr(self, kind)
        if kind in ("grid", "choice") and not value:
            raise ValueError(f"{kind} needs at least one value")
        if kind in ("uniform", "loguniform"):
            low, high = value
            if not low < high:
                raise ValueError(f"{kind} range [{low}, {high}] must have low < high")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform range [{low}, {high}] must be positive")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in DISTRIBUTIONS if getattr(self, k) is not None)

    def probe_values(self) -> list[Any]:
        """Values that stand for everything this distribution can give (all choices, or both range
        ends), checked against the training config before a sweep starts."""
        return list(getattr(self, self.kind))


# a point's family on the Pareto plot: the model families, the per-frame baselines of either, any other reference
FAMILIES = (*MODEL_FAMILIES, "per-frame", "baseline")


def family(cfg: TrainConfig) -> str:
    """The family a trial's point belongs to on the Pareto plot: per-frame (temporal shift off,
    either architecture), tsm, or rubiksnet."""
    return cfg.model.family if cfg.model.temporal_shift else "per-frame"


class ExtraTrial(StrictModel):
    name: str
    kind: Literal[FAMILIES] | None = None  # the point's family; unset: from its config (`family`)
    set: dict[str, Any] = Field(default_factory=dict)
    start_from: str | None = None  # another point's label: start from its trained model of the same seed


class Scheduler(StrictModel):
    type: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1.0)


class LatencySettings(StrictModel):
    """Latency for the frontier, measured by the driver after every trial has ended, one point at a
    time (models.profile.measure_latency_vs_reference: batch 1, inference form, `threads` threads)."""
    measure: bool = True
    reference: str = "tsm-nano"  # timed interleaved with each point's model: `latency_ratio` = model / reference
    rounds: int = Field(7, ge=1, le=100)
    warmup: int = Field(2, ge=0, le=100)

    @model_validator(mode="after")
    def _known(self):
        if self.reference.lower() not in MODEL_NAMES:
            raise ValueError(f"latency.reference {self.reference!r} is not one of {', '.join(MODEL_NAMES)}")
        return self


class SearchSpace(StrictModel):
    name: str
    base: str
    set: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Distribution] = Field(default_factory=dict)
    extra_trials: list[ExtraTrial] = Field(default_factory=list)
    seeds: list[int] | None = Field(None, min_length=1, max_length=100)  # replicates of every point
    num_samples: int = Field(1, ge=1)
    max_concurrent_trials: int = Field(1, ge=1)
    scheduler: Scheduler = Scheduler()
    metric: str = names.VAL_TOP1  # what the scheduler compares trials by
    mode: Literal["max", "min"] = "max"
    latency: LatencySettings = LatencySettings()

    @model_validator(mode="after")
    def _replicates(self):
        if self.seeds is None:
            return self
        if len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds {self.seeds}: give distinct seeds >= 0")
        sampled = [k for k, d in self.search.items() if d.kind != "grid"]
        if sampled:
            raise ValueError(f"seeds: replicates need fixed points, but {', '.join(sampled)} would be drawn anew for "
                             "each replicate (give them as grid values)")
        if "seed" in self.set or "seed" in self.search or any("seed" in e.set for e in self.extra_trials):
            raise ValueError("seeds: the trials' seed comes from `seeds`; leave `seed` out of set/search/extra_trials")
        return self

    @model_validator(mode="after")
    def _starts(self):
        first_stage = {p["label"] for p in self.points() if p["start_from"] is None}
        for extra in self.extra_trials:
            if extra.start_from is None:
                continue
            if extra.start_from not in first_stage:
                raise ValueError(f"extra trial {extra.name!r}: start_from {extra.start_from!r} is not a point that "
                                 f"starts from scratch (one of: {', '.join(sorted(first_stage))})")
            if self.num_samples != 1 or self.random_keys():
                raise ValueError(f"extra trial {extra.name!r}: start_from pairs trials by seed, which needs "
                                 "num_samples 1 and grid values only")
            if "model.init_from" in extra.set:
                raise ValueError(f"extra trial {extra.name!r}: give start_from or model.init_from, not both")
        return self

    def points(self) -> list[dict[str, Any]]:
        """The distinct points of the space: the grid's cartesian product, then the extra trials; each
        {"label", "kind", "set", "start_from"}."""
        keys = [k for k, d in self.search.items() if d.kind == "grid"]
        combos = itertools.product(*(self.search[k].grid for k in keys))
        points = [{"label": _label(dict(zip(keys, c))), "kind": None, "set": dict(zip(keys, c)), "start_from": None}
                  for c in combos]
        points += [{"label": e.name, "kind": e.kind, "set": dict(e.set), "start_from": e.start_from}
                   for e in self.extra_trials]
        return points

    @property
    def stages(self) -> int:
        """1, or 2 when some point starts from another's trained models."""
        return 2 if any(e.start_from for e in self.extra_trials) else 1

    def grid_points(self, stage: int | None = None) -> list[dict[str, Any]]:
        """One override dict per trial: every point, once per seed when `seeds` is given (seed by seed,
        so an interrupted sweep has every point at fewer seeds rather than some points at none). Each
        trial's `point` is its point's label, shared by its replicates. `stage` 1: the points that start
        from scratch; 2: those that start from another's models (`start_from`); None: all."""
        points = [p for p in self.points()
                  if stage is None or (p["start_from"] is None) == (stage == 1)]
        if self.seeds is None:
            return [{**p, "point": p["label"], "seed": None} for p in points]
        return [{**p, "point": p["label"], "seed": seed, "set": {**p["set"], "seed": seed}}
                for seed in self.seeds for p in points]

    def random_keys(self) -> dict[str, Distribution]:
        return {k: d for k, d in self.search.items() if d.kind != "grid"}


def _label(values: dict[str, Any]) -> str:
    # the model's name stands alone ("rubiksnet-nano,budget=0.5"); other keys as key=value
    return ",".join(str(v) if k == "model.name" else f"{k.split('.')[-1]}={v}" for k, v in values.items()) or "base"


class LoadedSpace:
    """A validated search space with its base training config (paths resolved) ready for trials."""

    def __init__(self, path: str, space: SearchSpace, base: TrainConfig) -> None:
        self.path = os.path.abspath(path)  # trials resolve paths from it in actors with another working directory
        self.space = space
        self.base = base

    @property
    def base_raw(self) -> dict:
        """The base config as plain data (logged with the sweep, bundled with a queued job)."""
        return self.base.model_dump()

    def trial_config(self, overrides: dict[str, Any]) -> TrainConfig:
        """The base config with the space's and the trial's overrides; a relative path among them is taken
        from the space file's folder (the base's own paths already are absolute), so trials read the same
        files whatever the working directory of the actor that runs them."""
        cfg = self.base.with_overrides({**self.space.set, **overrides}, f"{self.path} trial")
        return cfg.with_paths_beside(self.path)

    def point_kind(self, point: dict[str, Any]) -> str:
        """A grid point's family: the one its extra trial names, else the one its config gives."""
        return point.get("kind") or family(self.trial_config(point["set"]))

    def param_space(self, points: list[dict] | None = None) -> dict:
        """Tune's param space: {"point": grid over trial points (`points`, default all of the first
        stage), "<key>": sampled distribution, ...}."""
        from ray import tune

        sampled = {}
        for key, dist in self.space.random_keys().items():
            if dist.kind == "choice":
                sampled[key] = tune.choice(dist.choice)
            elif dist.kind == "uniform":
                sampled[key] = tune.uniform(*dist.uniform)
            else:
                sampled[key] = tune.loguniform(*dist.loguniform)
        points = self.space.grid_points(stage=1) if points is None else points
        return {"point": tune.grid_search(points), "sampled": sampled}


def load_space(path: str) -> LoadedSpace:
    """Read and fully validate a search-space file (and its base training config)."""
    space = validate_as(SearchSpace, read_yaml(path), path)
    base = load_config(beside(path, space.base))  # validates the base and resolves its data paths
    loaded = LoadedSpace(path, space, base)
    _check_trials(loaded)
    return loaded


def _check_trials(loaded: LoadedSpace) -> None:
    """Every grid point with each end of every sampled range must give a valid training config."""
    space = loaded.space
    for key in list(space.set) + list(space.search) + [k for e in space.extra_trials for k in e.set]:
        _check_key(loaded.path, key)
    probes = [{}] + [{k: v} for k, d in space.random_keys().items() for v in d.probe_values()]
    for point in space.grid_points():
        started = {"model.init_from": "runs:/<its start>/model"} if point["start_from"] else {}
        for probe in probes:
            try:
                loaded.trial_config({**point["set"], **started, **probe})
            except ConfigError as exc:
                raise ConfigError(f"{loaded.path}: trial {point['label']!r} {probe or ''} is invalid: "
                                  f"{str(exc).split(': ', 1)[-1]}") from None


def _check_key(path: str, dotted: str) -> None:
    node: Any = TrainConfig
    for part in dotted.split("."):
        fields = getattr(node, "model_fields", None)
        if fields is None or part not in fields:
            known = ", ".join(sorted(fields)) if fields else "(not a section)"
            raise ConfigError(f"{path}: unknown training-config key {dotted!r} ({part!r} not in: {known})")
        node = fields[part].annotation
