"""Training configuration: YAML validated into typed models at the edge.

Unknown keys, wrong types and out-of-range values are rejected with a message
that names the field (`ConfigError`), before any Ray or MLflow work starts.
`--set key.sub=value` overrides are applied to the raw YAML before validation
(`rubiks_service.config_files`). The choices of the model keys are the models'
own tuples, and `ModelConfig.builder_kwargs()` is what `build_model` takes.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rubiks_service.config_files import ConfigError, StrictModel, apply_overrides, beside, read_yaml, validate_as
from rubiks_service.data.clip_spec import ClipMode
from rubiks_service.models import MODEL_NAMES, MODELS, VARIANTS, ModelEntry, model_entry
from rubiks_service.models.inflate import TEMPORAL_INITS
from rubiks_service.ops.grad_norm import GRAD_NORM_FORMS
from rubiks_service.ops.modules import SHIFT_INITS

from .init_from import STAGES

__all__ = ["ConfigError", "EVAL_PROTOCOLS", "ModelConfig", "TrainConfig", "load_config", "validate"]

# the clip modes that are evaluation protocols, as the plain strings a config holds
EVAL_PROTOCOLS = tuple(mode.value for mode in ClipMode if mode is not ClipMode.TRAIN)
INIT_KEYS = ("init_from", "inflate_temporal", "freeze_stages")  # model keys of every family


class ModelConfig(StrictModel):
    name: str = "rubiksnet-tiny"  # one of models.MODEL_NAMES (any case)
    variant: Literal[VARIANTS] = "rs"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # lambda of the scaled gradient normalisation: a number (< 0: temporal sign update) or "auto" (T / H)
    temporal_factor: float | Literal["auto"] = 1.0
    grad_norm_form: Literal[GRAD_NORM_FORMS] = "release"  # unit sphere / Eq. 10's ellipsoid (ops/grad_norm.py)
    normalize_grad: bool = True
    shift_init: Literal[SHIFT_INITS] = "uniform"
    fixed_shifts: bool = False  # the paper's Table 4 ablation: frozen TSM temporal + ShiftNet spatial shifts
    temporal_shift: bool = True  # False: per-frame baseline (no temporal mixing)
    # start from these weights, not a resume (train/init_from.py): a checkpoint file (ours or the release's),
    # runs:/<run_id>/model or models:/<name>/<version> or models:/<name>@<alias>
    init_from: str | None = None
    inflate_temporal: Literal[TEMPORAL_INITS] = "tsm"  # temporal rows of shifts inflated from a 2D checkpoint
    freeze_stages: int = Field(0, ge=0, le=max(len(s) for s in STAGES.values()))  # stem, then residual layers

    @property
    def entry(self) -> ModelEntry:
        return model_entry(self.name)

    @property
    def family(self) -> str:
        """The model's family: "rubiksnet" or "tsm" (models.MODELS)."""
        return self.entry.family

    def builder_kwargs(self) -> dict[str, Any]:
        """The settings the model's family takes, as `build_model`'s keywords."""
        return {key: getattr(self, key) for key in self.entry.options}

    @classmethod
    def _default(cls, key: str):
        return cls.model_fields[key].default

    @model_validator(mode="after")
    def _check(self):
        if self.name.lower() not in MODEL_NAMES:
            raise ValueError(f"model.name {self.name!r} is not one of {', '.join(MODEL_NAMES)}")
        for key in type(self).model_fields:  # a setting the family does not take must stay at its default
            if key not in ("name", *INIT_KEYS) and key not in self.entry.options and getattr(self, key) != self._default(key):
                takers = sorted({e.family for e in MODELS.values() if key in e.options})
                raise ValueError(f"model.{key}: {getattr(self, key)!r} applies to {' / '.join(takers)} models, "
                                 f"not {self.name} (leave it at {self._default(key)!r})")
        if self.variant == "rs-aq":  # AQ's temporal shift is attention over integers; its spatial shift is 2D
            for key in ("fixed_shifts", "temporal_factor", "grad_norm_form", "shift_init"):
                if getattr(self, key) != self._default(key):
                    raise ValueError(f"model.{key}: {getattr(self, key)!r} applies to the rs / rs-q variants "
                                     f"(rs-aq has no learned interpolated 3D shift)")
            if not self.temporal_shift:
                raise ValueError("model.temporal_shift: false (per-frame baseline) applies to the rs / rs-q variants")
        if self.init_from is None:
            for key in INIT_KEYS[1:]:
                if getattr(self, key) != self._default(key):
                    raise ValueError(f"model.{key}: {getattr(self, key)!r} needs model.init_from")
        if self.freeze_stages > len(STAGES[self.family]):
            raise ValueError(f"model.freeze_stages: {self.freeze_stages} is more than the "
                             f"{len(STAGES[self.family])} stages of {self.name}")
        if self.fixed_shifts and not self.temporal_shift:
            raise ValueError("model.fixed_shifts: the fixed-shift ablation needs model.temporal_shift: true")
        if self.fixed_shifts and self.shift_init != "uniform":
            raise ValueError("model.shift_init: fixed shifts are always TSM in time + a ShiftNet grid in space "
                             "(leave shift_init unset)")
        if not self.normalize_grad or self.fixed_shifts:
            for key in ("temporal_factor", "grad_norm_form"):
                if getattr(self, key) != self._default(key):
                    why = "model.fixed_shifts: true" if self.fixed_shifts else "model.normalize_grad: false"
                    raise ValueError(f"model.{key}: {getattr(self, key)!r} has no effect with {why}")
        return self


class DataConfig(StrictModel):
    train_manifest: str
    val_manifest: str
    data_root: str | None = None
    # upper bounds: far above any run that fits a machine, so a typo is refused, not a crash mid-run
    segments: int = Field(8, ge=1, le=128)
    crop_size: int = Field(112, ge=8, le=1024)
    batch_size: int = Field(8, ge=1, le=4096)  # per worker
    flip: bool = True
    flip_pairs: dict[int, int] = Field(default_factory=dict)
    min_valid_fraction: float = Field(0.9, ge=0.0, le=1.0)
    decode_cpus: float = Field(0.25, gt=0.0, le=64.0)
    # decode every video once and keep its frames in the object store (datasets that fit in
    # memory): epochs then cost no decoding; each worker shuffles its shard in this many rows
    cache_frames: bool = False
    shuffle_buffer: int = Field(1024, ge=1, le=1_000_000)
    # frame shards written once by `rubiks data prepare-frames` from the two manifests (folders, local or
    # s3://): set both and the run samples its clips from their frames instead of decoding videos
    train_frames: str | None = None
    val_frames: str | None = None
    # with cache_frames or frame shards: each worker keeps its shard's frames in its own memory after the
    # first pass and samples every later epoch's clips there (no Ray Data pass per epoch: small datasets
    # train several times faster); the shard must fit in a worker's memory
    hold_in_worker: bool = False

    @model_validator(mode="after")
    def _check_frames(self):
        if self.hold_in_worker and not (self.cache_frames or self.train_frames):
            raise ValueError("data.hold_in_worker keeps decoded frames: set data.cache_frames or data.train_frames")
        if (self.train_frames is None) != (self.val_frames is None):
            raise ValueError("data.train_frames and data.val_frames go together (frame shards of both manifests)")
        if self.train_frames is not None and self.cache_frames:
            raise ValueError("data.cache_frames: the run reads frame shards (data.train_frames); leave it false")
        return self


class OptimConfig(StrictModel):
    epochs: int = Field(10, ge=1, le=10_000)
    lr: float = Field(0.01, gt=0.0, le=10.0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    lr_steps: list[int] = Field(default_factory=list)  # epochs at which lr *= gamma
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    # the per-epoch learning-rate shape: "step" (x gamma at each of lr_steps) or "cosine" (from lr down to
    # ~0 over the epochs, lr_steps unused); both after `warmup_epochs` of linear warm-up from lr / (warmup + 1)
    schedule: Literal["step", "cosine"] = "step"
    warmup_epochs: int = Field(0, ge=0, le=1000)
    shift_lr_mult: float = Field(0.01, ge=0.0)  # the paper's x0.01, applied after warm-up
    shift_warmup_epochs: int = Field(0, ge=0)  # shifts learn at the full lr before that
    backbone_lr_mult: float = Field(1.0, ge=0.0)  # with model.init_from: lr x this for all but the classifier head


class AQConfig(StrictModel):
    budget: float = Field(0.25, ge=0.0, le=1.0)  # B
    weight: float = Field(1.0, ge=0.0)  # budget-loss weight
    temperature_start: float = Field(2.0, gt=0.0)
    temperature_end: float = Field(1e-3, gt=0.0)
    anneal_epochs: int | None = Field(None, ge=1)  # default: all epochs


class ScalingConfig(StrictModel):
    num_workers: int = Field(1, ge=1, le=1024)
    cpus_per_worker: float = Field(1.0, gt=0.0, le=512.0)
    use_gpu: bool = False
    amp: Literal["off", "bf16", "fp16"] = "off"  # GPU only


class TrainConfig(StrictModel):
    name: str = "rubiks-train"
    seed: int = Field(0, ge=0, lt=2**32)  # numpy and torch seeds
    model: ModelConfig = ModelConfig()
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    aq: AQConfig = AQConfig()
    scaling: ScalingConfig = ScalingConfig()
    max_failures: int = Field(1, ge=0, le=100)
    storage_path: str = "runs"  # a folder, or s3://bucket/prefix (no disk shared by the nodes needed)
    experiment: str = "rubiks"
    eval_protocols: list[Literal[EVAL_PROTOCOLS]] = Field(default_factory=lambda: list(EVAL_PROTOCOLS))
    log_every: int = Field(10, ge=1, le=1_000_000)  # steps between progress lines

    @model_validator(mode="before")
    @classmethod
    def _no_tracking_uri(cls, raw):
        """The tracking store is the command's (--tracking-uri / MLFLOW_TRACKING_URI), never the config's: a
        config's would be ignored, and logged with the run's params, credentials and all. (Checkpoints
        written before hold `tracking_uri: null`, which is dropped.)"""
        if isinstance(raw, dict) and "tracking_uri" in raw:
            if raw["tracking_uri"] is not None:
                raise ValueError("tracking_uri is not read from a config (it would be logged with the run): "
                                 "give --tracking-uri or set MLFLOW_TRACKING_URI")
            raw = {k: v for k, v in raw.items() if k != "tracking_uri"}
        return raw

    @model_validator(mode="after")
    def _check(self):
        if self.scaling.amp != "off" and not self.scaling.use_gpu:
            raise ValueError("scaling.amp needs scaling.use_gpu: true (AMP is GPU-only here)")
        if any(step >= self.optim.epochs for step in self.optim.lr_steps):
            raise ValueError(f"optim.lr_steps {self.optim.lr_steps} must be below optim.epochs ({self.optim.epochs})")
        if self.optim.warmup_epochs >= self.optim.epochs:
            raise ValueError(f"optim.warmup_epochs {self.optim.warmup_epochs} must be below optim.epochs "
                             f"({self.optim.epochs})")
        if self.optim.schedule == "cosine" and self.optim.lr_steps:
            raise ValueError("optim.lr_steps: the cosine schedule has no steps (leave lr_steps empty)")
        if self.optim.backbone_lr_mult != 1.0 and self.model.init_from is None:
            raise ValueError("optim.backbone_lr_mult needs model.init_from (the weights it protects)")
        return self

    def with_overrides(self, overrides: dict[str, Any], source: str) -> TrainConfig:
        """This config with `{"optim.lr": 0.1, ...}` applied, validated again (a sweep's trial)."""
        return validate(apply_overrides(self.model_dump(), overrides), source)

    def with_paths_beside(self, yaml_path: str) -> TrainConfig:
        """Relative data and storage paths taken from the folder of the YAML file that names them, so a
        run reads and lands in the same place whatever the working directory."""
        def resolve(value: str | None) -> str | None:
            return beside(yaml_path, value) if value is not None else None

        d = self.data
        data = d.model_copy(update={"train_manifest": resolve(d.train_manifest), "val_manifest": resolve(d.val_manifest),
                                    "data_root": resolve(d.data_root), "train_frames": resolve(d.train_frames),
                                    "val_frames": resolve(d.val_frames)})
        model = self.model
        if model.init_from is not None and ":/" not in model.init_from:  # a file; runs:/ models:/ s3:// are not
            model = model.model_copy(update={"init_from": resolve(model.init_from)})
        return self.model_copy(update={"data": data, "storage_path": resolve(self.storage_path), "model": model})


def validate(raw: dict, source: str = "config") -> TrainConfig:
    return validate_as(TrainConfig, raw, source)


def load_config(path: str, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a training YAML; relative data and storage paths are taken from the
    YAML's folder."""
    return validate(apply_overrides(read_yaml(path), overrides), path).with_paths_beside(path)
