"""What the command groups share: the options several commands take, result output, the one-line
user error, running a command (`run_command`: redaction, bounded waits, pure `--json` stdout) and
joining Ray. Imports nothing heavy: `rubiks --help` stays quick."""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence

from rubiks_service.redact import UserError, one_line, redact

# How long a command waits for a service that does not answer (README: "Unreachable services").
# MLflow over HTTP: a TCP check first (CONNECT_TIMEOUT_S, tracking.mlflow_store.check_reachable), then
# MLflow's own client gives up after its retries: 2 retries, 1 s backoff (1 + 2 s), 20 s a request.
CONNECT_TIMEOUT_S = 10
BOUNDED_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
# commands whose --json output their own module keeps pure (their Ray/Tune output goes to stderr there)
OWN_JSON_STDOUT = ("train", "sweep")

_result_out = None  # the real stdout while a --json command runs (json_stdout)


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


def print_result(text: str) -> None:
    """A command's result on stdout: the real one, also while `json_stdout` sends everything else to stderr."""
    out = _result_out or sys.stdout
    out.write(text + "\n")
    out.flush()


def print_json(result: object) -> None:
    print_result(json.dumps(result, indent=2, default=str))


def emit(result: dict, as_json: bool, width: int = 18, float_format: str = "") -> None:
    """A result dict as JSON (stdout holds only that) or as aligned `key: value` lines, floats in
    `float_format`."""
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            print(f"{key:>{width}}: {value:{float_format}}" if isinstance(value, float) else f"{key:>{width}}: {value}")


def user_error(command: str, message: object) -> int:
    """One line on stderr for a problem the user can fix, credentials masked; the exit status for it."""
    text = " ".join(redact(message).split()) or type(message).__name__
    print(f"rubiks {command}: {text}", file=sys.stderr, flush=True)
    return 2


@contextlib.contextmanager
def json_stdout(active: bool) -> Iterator[None]:
    """While a --json command runs, stdout holds only its result (`print_result`): anything else written
    there (Ray worker lines, library chatter, child processes writing to file descriptor 1) goes to stderr."""
    global _result_out
    if not active:
        yield
        return
    real = sys.stdout
    real.flush()
    saved = None
    with contextlib.suppress(AttributeError, OSError, ValueError):  # a captured stdout has no descriptor
        if real.fileno() == 1:
            saved = os.dup(1)
            os.dup2(2, 1)
    _result_out = os.fdopen(saved, "w", closefd=False) if saved is not None else real
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = real
        _result_out.flush()
        _result_out = None
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _redacting_log_records() -> None:
    """Every log record of this process (ours, MLflow's, urllib3's, Ray's driver) passes through `redact`."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def factory(*args, **kwargs):
        record = make(*args, **kwargs)
        with contextlib.suppress(Exception):  # a record whose arguments do not format stays as it is
            record.msg, record.args = redact(record.getMessage()), ()
        return record

    factory.redacts = True
    logging.setLogRecordFactory(factory)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: its waits on services bounded, every log line redacted, stdout pure JSON
    with --json, and a `UserError` from anywhere below as one line and exit status 2. Anything else is
    a bug: its traceback is shown, redacted, with exit status 1."""
    for key, value in BOUNDED_ENV.items():
        os.environ.setdefault(key, value)
    _redacting_log_records()
    pure = bool(getattr(args, "json", False)) and args.command not in OWN_JSON_STDOUT
    name = " ".join(str(getattr(args, k)) for k in ("command", "jobs_command", "data_command") if getattr(args, k, None))
    with json_stdout(pure):
        try:
            return args.func(args)
        except UserError as exc:
            return user_error(name, one_line(exc, limit=1000))
        except KeyboardInterrupt:
            print(f"rubiks {name}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - a bug: the traceback helps, its secrets do not
            if type(exc).__module__.startswith("mlflow.") and type(exc).__name__ == "MlflowException":
                return user_error(name, _mlflow_problem(exc))
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
            return 1


def _mlflow_problem(exc: Exception) -> str:
    """What the MLflow server (or store) refused, in one line; a refused login says how to sign in."""
    text = " ".join(str(exc).split())
    if "error code 401" in text or getattr(exc, "error_code", "") == "UNAUTHENTICATED":
        return ("the MLflow server refused the request: not signed in (401); export MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD")
    if "error code 403" in text or getattr(exc, "error_code", "") == "PERMISSION_DENIED":
        return "the MLflow server refused the request: this user lacks the permission (403)"
    return f"MLflow: {one_line(text, limit=400)}"


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), else start an embedded local instance."""
    import os

    import ray

    if ray.is_initialized():  # a process that already joined one (a notebook, a test) stays in it
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_gcs(address)
        ray.init(address=address, log_to_driver=True)
    else:
        # the dashboard (127.0.0.1 only) is what lets Tune release the CPUs of a trial that ASHA stops
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, log_to_driver=True)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False


class RayUnreachable(UserError, RuntimeError):
    """A Ray cluster (GCS or Jobs API) that cannot be reached; the message (credentials masked) is one line."""


def _check_gcs(address: str) -> None:
    """A `host:port` GCS address must accept a connection within CONNECT_TIMEOUT_S (ray.init would wait
    on its own, longer timeouts). `auto` and `ray://` addresses are left to Ray."""
    import socket

    from rubiks_service.redact import redact_url

    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except TimeoutError:
        raise RayUnreachable(f"cannot reach the Ray cluster at {redact_url(address)}: no answer within "
                             f"{CONNECT_TIMEOUT_S} s") from None
    except OSError as exc:
        raise RayUnreachable(f"cannot reach the Ray cluster at {redact_url(address)}: {exc.strerror or exc}") from None


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
