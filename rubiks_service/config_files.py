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

Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """A config section: unknown keys are refused, and a validated config is never changed in place."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """A configuration file or override that cannot be used, with the reason (one line)."""


def read_yaml(path: str) -> dict:
    """The top-level mapping of a YAML file; `ConfigError` if it is missing, unparsable or not a mapping."""
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
    return key.strip(), yaml.safe_load(text)


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
