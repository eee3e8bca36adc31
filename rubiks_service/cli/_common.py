"""What the command groups share: the options several commands take, result output, the one-line
user error, and joining Ray. Imports nothing heavy: `rubiks --help` stays quick."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (stdout holds only that)")


def add_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local instance)")


def add_tracking_uri(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri",
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite under the storage path)")


def add_tracking_args(p: argparse.ArgumentParser) -> None:
    """--tracking-uri and --storage-path (where runs and the default MLflow store live)."""
    add_tracking_uri(p)
    p.add_argument("--storage-path", default="runs", help="where runs and the default MLflow store live (default: runs)")


def emit(result: dict, as_json: bool, width: int = 18, float_format: str = "") -> None:
    """A result dict as JSON (stdout holds only that) or as aligned `key: value` lines, floats in
    `float_format`."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>{width}}: {value:{float_format}}" if isinstance(value, float) else f"{key:>{width}}: {value}")


def user_error(command: str, message: object) -> int:
    """One line on stderr for a problem the user can fix; the exit status for it."""
    print(f"rubiks {command}: {message}", file=sys.stderr)
    return 2


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), else start an embedded local instance."""
    import os

    import ray

    if ray.is_initialized():  # a process that already joined one (a notebook, a test) stays in it
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # the dashboard (127.0.0.1 only) is what lets Tune release the CPUs of a trial that ASHA stops
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, log_to_driver=True)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False


class LazyChoices(Sequence):
    """argparse `choices` read from their owner (the models' own tuples) when first needed: building the
    parser imports no torch, so `rubiks --help` and the queue commands stay quick. Give the option a
    `metavar` (argparse would list the choices in it when the option is added) and put `%(choices)s`
    in its help: they are read when a value is checked or the command's help is shown."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._values: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __getitem__(self, index):
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())
