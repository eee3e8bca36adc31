"""Config files a user hands us (training configs, search spaces, job specs): YAML read, `--set`
overrides applied, validated into a pydantic model with every problem named by its dotted field.

Plumbing only (yaml + pydantic): no ray, mlflow or torch, so the queue and the CLI can refuse a
bad file quickly. The models themselves live where they are used (`train.config`, `tune.space`,
`queue.spec`).
"""
from __future__ import annotations

import copy
import os
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from rubiks_service.redact import UserError

Model = TypeVar("Model", bound=BaseModel)


MAX_CONFIG_BYTES = 1_000_000


class StrictModel(BaseModel):
    """A config section: unknown keys are refused, and a validated config is never changed in place."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # inf/nan: never a setting


class ConfigError(UserError, ValueError):
    """A configuration file or override that cannot be used, with the reason (one line)."""


def read_yaml(path: str) -> dict:
    """The top-level mapping of a YAML file; `ConfigError` if it is missing, unparsable or not a mapping."""
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: is a folder, not a config file")
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {os.path.getsize(path)} bytes is not a config file (at most {MAX_CONFIG_BYTES})")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file in UTF-8 (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:300]})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return raw


def apply_overrides(raw: dict, overrides: list[str] | dict | None) -> dict:
    """`["optim.lr=0.1", ...]` (values parsed as YAML) or `{"optim.lr": 0.1}` applied to a copy of `raw`."""
    raw = copy.deepcopy(raw)
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides or []]
    for key, value in items:
        _set_path(raw, key, value)
    return raw


def _split(override: str) -> tuple[str, object]:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    key, text = override.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"override {override!r}: the value is not valid YAML") from None


def _set_path(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def validate_as(model: type[Model], raw: dict, source: str) -> Model:
    """`model.model_validate(raw)`, with every problem named by its dotted field in one `ConfigError`."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def beside(yaml_path: str, path: str) -> str:
    """`path` as written in the YAML file `yaml_path`: a relative path is taken from that file's folder;
    an absolute one and a URI (`s3://bucket/…`) are kept."""
    if os.path.isabs(path) or "://" in path:
        return path
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(yaml_path)), path))
