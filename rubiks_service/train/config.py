"""Training configuration: YAML validated into typed models at the edge.

Unknown keys, wrong types and out-of-range values are rejected with a message
that names the field (`ConfigError`), before any Ray or MLflow work starts.
`--set key.sub=value` overrides are applied to the raw YAML before validation.
"""
from __future__ import annotations

import os
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A configuration file or override that cannot be used, with the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    name: str = "rubiksnet-tiny"  # rubiksnet-<tier>, tsm-r<depth> or tsm-nano / tsm-micro
    variant: Literal["rs", "rs-q", "rs-aq"] = "rs"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # lambda of the scaled gradient normalisation: a number (< 0: temporal sign update) or "auto" (T / H)
    temporal_factor: float | Literal["auto"] = 1.0
    grad_norm_form: Literal["release", "paper"] = "release"  # unit sphere / Eq. 10's ellipsoid (ops/grad_norm.py)
    normalize_grad: bool = True
    shift_init: Literal["uniform", "tsm", "zeros", "grid", "tsm-grid"] = "uniform"
    fixed_shifts: bool = False  # the paper's Table 4 ablation: frozen TSM temporal + ShiftNet spatial shifts
    temporal_shift: bool = True  # False: per-frame baseline (no temporal mixing)

    @model_validator(mode="after")
    def _check(self):
        from rubiks_service.models import MODEL_NAMES  # torch: imported when a config is validated

        if self.name.lower() not in MODEL_NAMES:
            raise ValueError(f"model.name {self.name!r} is not one of {', '.join(MODEL_NAMES)}")
        shift_only = {"variant": "rs", "temporal_factor": 1.0, "grad_norm_form": "release", "normalize_grad": True,
                      "shift_init": "uniform", "fixed_shifts": False}
        if self.name.lower().startswith("tsm-"):  # TSM's shift is fixed: the learned-shift settings do not apply
            for key, default in shift_only.items():
                if getattr(self, key) != default:
                    raise ValueError(f"model.{key}: {getattr(self, key)!r} applies to rubiksnet models, not "
                                     f"{self.name} (leave it at {default!r})")
            return self
        if self.variant == "rs-aq":  # AQ's temporal shift is attention over integers; its spatial shift is 2D
            for key in ("fixed_shifts", "temporal_factor", "grad_norm_form", "shift_init"):
                if getattr(self, key) != shift_only[key]:
                    raise ValueError(f"model.{key}: {getattr(self, key)!r} applies to the rs / rs-q variants "
                                     f"(rs-aq has no learned interpolated 3D shift)")
            if not self.temporal_shift:
                raise ValueError("model.temporal_shift: false (per-frame baseline) applies to the rs / rs-q variants")
        if self.fixed_shifts and not self.temporal_shift:
            raise ValueError("model.fixed_shifts: the fixed-shift ablation needs model.temporal_shift: true")
        if self.fixed_shifts and self.shift_init != "uniform":
            raise ValueError("model.shift_init: fixed shifts are always TSM in time + a ShiftNet grid in space "
                             "(leave shift_init unset)")
        if not self.normalize_grad or self.fixed_shifts:
            for key in ("temporal_factor", "grad_norm_form"):
                if getattr(self, key) != shift_only[key]:
                    why = "model.fixed_shifts: true" if self.fixed_shifts else "model.normalize_grad: false"
                    raise ValueError(f"model.{key}: {getattr(self, key)!r} has no effect with {why}")
        return self


class DataConfig(_Strict):
    train_manifest: str
    val_manifest: str
    data_root: str | None = None
    segments: int = Field(8, ge=1)
    crop_size: int = Field(112, ge=8)
    batch_size: int = Field(8, ge=1)  # per worker
    flip: bool = True
    flip_pairs: dict[int, int] = Field(default_factory=dict)
    min_valid_fraction: float = Field(0.9, ge=0.0, le=1.0)
    decode_cpus: float = Field(0.25, gt=0.0)
    # decode every video once and keep its frames in the object store (datasets that fit in
    # memory): epochs then cost no decoding; each worker shuffles its shard in this many rows
    cache_frames: bool = False
    shuffle_buffer: int = Field(1024, ge=1)


class OptimConfig(_Strict):
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.01, gt=0.0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    lr_steps: list[int] = Field(default_factory=list)  # epochs at which lr *= gamma
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    shift_lr_mult: float = Field(0.01, ge=0.0)  # the paper's x0.01, applied after warm-up
    shift_warmup_epochs: int = Field(0, ge=0)  # shifts learn at the full lr before that


class AQConfig(_Strict):
    budget: float = Field(0.25, ge=0.0, le=1.0)  # B
    weight: float = Field(1.0, ge=0.0)  # budget-loss weight
    temperature_start: float = Field(2.0, gt=0.0)
    temperature_end: float = Field(1e-3, gt=0.0)
    anneal_epochs: int | None = Field(None, ge=1)  # default: all epochs


class ScalingConfig(_Strict):
    num_workers: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    use_gpu: bool = False
    amp: Literal["off", "bf16", "fp16"] = "off"  # GPU only


class TrainConfig(_Strict):
    name: str = "rubiks-train"
    seed: int = Field(0, ge=0)
    model: ModelConfig = ModelConfig()
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    aq: AQConfig = AQConfig()
    scaling: ScalingConfig = ScalingConfig()
    max_failures: int = Field(1, ge=0)
    storage_path: str = "runs"
    experiment: str = "rubiks"
    tracking_uri: str | None = None  # default: sqlite:///<storage_path>/mlflow.db
    eval_protocols: list[Literal["1clip", "2clip"]] = Field(default_factory=lambda: ["1clip", "2clip"])
    log_every: int = Field(10, ge=1)  # steps between progress lines

    @model_validator(mode="after")
    def _check(self):
        if self.scaling.amp != "off" and not self.scaling.use_gpu:
            raise ValueError("scaling.amp needs scaling.use_gpu: true (AMP is GPU-only here)")
        if any(step >= self.optim.epochs for step in self.optim.lr_steps):
            raise ValueError(f"optim.lr_steps {self.optim.lr_steps} must be below optim.epochs ({self.optim.epochs})")
        return self


def _set_path(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str] | dict | None) -> dict:
    """`["optim.lr=0.1", ...]` or `{"optim.lr": 0.1}` applied to a raw config dict (YAML-typed values)."""
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides or []]
    for key, value in items:
        _set_path(raw, key, value)
    return raw


def _split(override: str) -> tuple[str, object]:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    key, text = override.split("=", 1)
    return key.strip(), yaml.safe_load(text)


def validate_as(model: type[BaseModel], raw: dict, source: str):
    """`model.model_validate(raw)`, with every problem named by its dotted field in one `ConfigError`."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def validate(raw: dict, source: str = "config") -> TrainConfig:
    return validate_as(TrainConfig, raw, source)


def beside(yaml_path: str, path: str) -> str:
    """`path` as written in the YAML file `yaml_path`: a relative path is taken from that file's folder."""
    if os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(yaml_path)), path))


def read_yaml(path: str) -> dict:
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return raw


def load_config(path: str, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a training YAML; relative data and storage paths are taken from the
    YAML's folder."""
    raw = apply_overrides(read_yaml(path), overrides)

    def resolve(section: dict, key: str) -> None:
        if isinstance(section.get(key), str):
            section[key] = beside(path, section[key])

    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("train_manifest", "val_manifest", "data_root"):
            resolve(data, key)
    resolve(raw, "storage_path")  # so a run lands in the same place whatever the working directory
    return validate(raw, path)
