"""Job specs (`jobs/*.yaml`): what to run, with what priority and resources.

    name: motion-sweep
    kind: sweep                      # train | sweep
    config: ../tune_spaces/motion-demo.yaml   # training YAML (train) or search space (sweep)
    set: [optim.epochs=3]            # train only: config overrides
    priority: 0                      # higher first; FIFO within a priority
    resources: {cpus: 0, gpus: 0}    # reserved for the job's driver (its trainers reserve their own)
    max_retries: 2                   # retries after infrastructure failures (not after the job's own errors)

The referenced config is validated at submit time, so a bad file is refused
before it can sit in the queue.
"""
from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rubiks_service.train.config import ConfigError, beside, load_config, read_yaml, validate_as


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus: float = Field(0.0, ge=0.0)
    gpus: float = Field(0.0, ge=0.0)


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["train", "sweep"]
    config: str
    set: list[str] = Field(default_factory=list)
    priority: int = 0
    resources: Resources = Resources()
    max_retries: int = Field(2, ge=0, le=20)

    def entrypoint(self, launcher: str = "rubiks") -> str:
        """The command the Ray job runs (the config path is absolute: the cluster shares the filesystem).
        `launcher` is how the cluster runs the CLI: `rubiks`, or `<python> -m rubiks_service.cli`."""
        import shlex

        args = [self.kind, self.config, *(a for s in self.set for a in ("--set", s))]
        return " ".join([launcher, *(shlex.quote(a) for a in args)])


def load_job_spec(path: str, priority: int | None = None) -> JobSpec:
    spec = validate_as(JobSpec, read_yaml(path), path)
    spec = spec.model_copy(update={"config": os.path.normpath(beside(path, spec.config))}
                           | ({"priority": priority} if priority is not None else {}))
    check_runnable(spec)
    return spec


def check_runnable(spec: JobSpec) -> None:
    """Validate the training config or search space the job points at."""
    if spec.kind == "sweep":
        from rubiks_service.tune.space import load_space

        if spec.set:
            raise ConfigError(f"job {spec.name!r}: `set` applies to train jobs; put sweep overrides in the space's `set`")
        load_space(spec.config)
    else:
        load_config(spec.config, spec.set)
