"""Job specs (`jobs/*.yaml`): what to run, with what priority and resources.

    name: motion-sweep
    kind: sweep                      # train | sweep
    config: ../tune_spaces/motion-demo.yaml   # training YAML (train) or search space (sweep)
    set: [optim.epochs=3]            # train only: config overrides
    priority: 0                      # higher first; FIFO within a priority
    resources: {cpus: 0, gpus: 0}    # reserved for the job's driver (its trainers reserve their own)
    max_retries: 2                   # retries after infrastructure failures (not after the job's own errors)

At submit the referenced config is validated and bundled (`bundle_job`): the job carries the
resolved files it runs (stored with the job, shipped in its environment, unpacked by `rubiks jobs exec`) (a training config with the overrides applied, or a search space with
its base config), so it runs on a cluster that never saw the submitting machine's folders, and
an edit after submit changes nothing. Paths *inside* the configs (data manifests, videos,
storage_path) are taken as absolute paths the cluster must see: shared storage is the user's.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from rubiks_service.config_files import ConfigError, beside, read_yaml, validate_as


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus: float = Field(0.0, ge=0.0)
    gpus: float = Field(0.0, ge=0.0)


KINDS = ("train", "sweep")


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal[KINDS]
    config: str
    set: list[str] = Field(default_factory=list)
    priority: int = Field(0, ge=-1000, le=1000)
    resources: Resources = Resources()
    max_retries: int = Field(2, ge=0, le=20)

    def entrypoint(self, launcher: str = "rubiks") -> str:
        """The command the Ray job runs: it unpacks the bundle it finds in BUNDLE_ENV and runs it.
        `launcher` is how the cluster runs the CLI: `rubiks`, or `<python> -m rubiks_service.cli`."""
        return f"{launcher} jobs exec {self.kind}"


# The bundle travels in the job's environment (runtime_env env_vars), not as a Ray working_dir:
# Ray garbage-collects a job's working_dir package while the job still runs in it once the
# job's Tune/Train actors that shared it are gone (seen: the driver's cwd vanished mid-sweep).
BUNDLE_ENV = "RUBIKS_JOB_BUNDLE"
MAX_BUNDLE_BYTES = 100_000  # one environment string may hold 128 KiB on Linux


# the file of a bundle that the job's command names; a sweep's space names its base as BASE_FILE
ENTRY_FILE = {"train": "config.yaml", "sweep": "space.yaml"}
BASE_FILE = "base.yaml"


def load_job_spec(path: str, priority: int | None = None) -> JobSpec:
    """The job spec at `path` (its config path taken from the spec's folder); what it runs is not read."""
    raw = read_yaml(path) | ({"priority": priority} if priority is not None else {})  # --priority is checked too
    spec = validate_as(JobSpec, raw, path)
    return spec.model_copy(update={"config": os.path.normpath(beside(path, spec.config))})


def load_job(path: str, priority: int | None = None) -> tuple[JobSpec, dict[str, str]]:
    """Read a job spec and bundle what it runs (`bundle_job`): validated once, at submit."""
    spec = load_job_spec(path, priority)
    return spec, bundle_job(spec)


def _dump(tree: dict) -> str:
    return yaml.safe_dump(tree, sort_keys=False)


def bundle_job(spec: JobSpec) -> dict[str, str]:
    """Validate what the job runs and return it as files {name: YAML text}, self-contained: the
    overrides are applied, relative paths resolved, a sweep's base config included."""
    if spec.kind == "sweep" and spec.set:
        raise ConfigError(f"job {spec.name!r}: `set` applies to train jobs; put sweep overrides in the space's `set`")
    loaded = _load(spec.kind, spec.config, spec.set)
    if spec.kind == "sweep":
        space = loaded.space.model_dump(mode="json") | {"base": BASE_FILE}
        bundle = {ENTRY_FILE["sweep"]: _dump(space), BASE_FILE: _dump(loaded.base_raw)}
    else:
        bundle = {ENTRY_FILE["train"]: _dump(loaded.model_dump(mode="json"))}
    if len(json.dumps(bundle)) > MAX_BUNDLE_BYTES:
        raise ConfigError(f"job {spec.name!r}: its configs take more than {MAX_BUNDLE_BYTES} bytes")
    with tempfile.TemporaryDirectory() as tmp:  # the bundle alone must validate, as it will on the cluster
        write_bundle(bundle, tmp)
        _load(spec.kind, entry_path(spec.kind, tmp))
    return bundle


def write_bundle(bundle: dict[str, str], folder: str) -> None:
    for name, text in bundle.items():
        if os.path.basename(name) != name:  # bundles hold flat file names only
            raise ConfigError(f"job bundle: bad file name {name!r}")
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)


def entry_path(kind: str, folder: str) -> str:
    return os.path.join(folder, ENTRY_FILE[kind])


def _load(kind: str, path: str, overrides: list[str] | None = None):
    """The validated search space (sweep) or training config (train) at `path`."""
    if kind == "sweep":
        from rubiks_service.tune.space import load_space

        return load_space(path)
    from rubiks_service.train.config import load_config  # torch: the model names are the models' own

    return load_config(path, overrides)
