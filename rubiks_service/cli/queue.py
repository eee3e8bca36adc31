"""`rubiks submit`, `rubiks jobs list|status|logs|cancel|migrate`, `rubiks serve`.

A user error (a bad spec, an unreachable or too-new queue database, an unreachable Ray) is one
line on stderr and exit code 2 (`_user_errors`), never a traceback."""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

from ._common import LazyChoices, add_json, add_tracking_args, user_error

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"


class RayUnreachable(RuntimeError):
    pass


def _user_errors(command: str):
    def wrap(func):
        @functools.wraps(func)
        def run(args) -> int:
            from rubiks_service.config_files import ConfigError
            from rubiks_service.queue.store import QueueUnavailable

            try:
                return func(args)
            except (ConfigError, QueueUnavailable, RayUnreachable) as exc:
                return user_error(command, exc)
        return run
    return wrap


def _store(args):
    from rubiks_service.queue.store import JobStore, default_queue_url

    return JobStore(args.queue_url or default_queue_url(args.storage_path))


def _ray_token() -> str | None:
    """The cluster's token: RAY_AUTH_TOKEN, else the file at RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token
    (where `ray get-auth-token --generate` writes it)."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    if token:
        return token.strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.path.isfile(path):
        with open(path) as f:
            return f.read().strip() or None
    return None


def _client(address: str | None):
    """A Jobs API client that sends the cluster's token. (Ray's own client sends it only when
    RAY_AUTH_MODE=token is set in this process, which a laptop or the dispatcher need not have.)
    The client checks the connection when it is made: an unreachable Ray is one clear error."""
    from ray.job_submission import JobSubmissionClient

    url = _dashboard(address)
    token = _ray_token()
    try:
        return JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"} if token else None)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError/RuntimeError/auth errors here
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise RayUnreachable(f"cannot reach the Ray Jobs API at {url}: {reason}") from None


def _dashboard(address: str | None) -> str:
    address = address or os.environ.get("RAY_DASHBOARD_ADDRESS") or os.environ.get("RAY_ADDRESS") or DEFAULT_DASHBOARD
    if address.startswith("ray://") or address == "auto" or ":6379" in address:
        raise SystemExit(f"rubiks: {address!r} is a GCS address; the Jobs API wants the dashboard URL, e.g. {DEFAULT_DASHBOARD}")
    return address if "://" in address else f"http://{address}"


@_user_errors("submit")
def _submit(args) -> int:
    from rubiks_service.queue.spec import load_job

    spec, bundle = load_job(args.spec, priority=args.priority)  # the job carries these files to the cluster
    store = _store(args)
    job = store.add(spec, bundle)
    if args.address:  # submit at once as well, if the concurrency limit allows
        _dispatcher(store, _client(args.address), args).step()
        job = store.get(job.id)
    print(json.dumps(job.as_dict(), indent=2) if args.json else f"{job.id}  {job.state}  {spec.kind} {spec.name}")
    return 0


def _dispatcher(store, client, args):
    from rubiks_service.queue.dispatcher import Dispatcher, mlflow_model_uri_reader, mlflow_run_finder
    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri

    uri = resolve_tracking_uri(getattr(args, "tracking_uri", None), args.storage_path)
    return Dispatcher(store, client, max_running=getattr(args, "max_running", 1), launcher=_launcher(args),
                      tracking_uri=uri, find_mlflow_run=mlflow_run_finder(uri),
                      find_model_uri=mlflow_model_uri_reader(uri))


def _launcher(args) -> str:
    """How the cluster runs the CLI: this very interpreter for the embedded local Ray, else `rubiks`."""
    import shlex

    if getattr(args, "launcher", None):
        return args.launcher
    return "rubiks" if getattr(args, "address", None) else f"{shlex.quote(sys.executable)} -m rubiks_service.cli"


@_user_errors("jobs")
def _jobs(args) -> int:
    from rubiks_service.queue.store import ACTIVE, UnknownJob

    store = _store(args)  # opening the store migrates its schema to this release's
    try:
        if args.jobs_command == "migrate":
            from rubiks_service.queue.schema import current_revision

            revision = current_revision(store.engine)
            print(json.dumps({"queue": store.url, "revision": revision}) if args.json
                  else f"{store.url}: queue schema at revision {revision}")
            return 0
        if args.jobs_command == "list":
            jobs = store.list(args.state)
            if args.json:
                print(json.dumps([j.as_dict() for j in jobs], indent=2))
            for j in [] if args.json else jobs:
                print(f"{j.id:34} {j.state:10} p={j.priority:<3} {j.kind:5} {j.name:24} {j.created_at:%Y-%m-%d %H:%M:%S}"
                      + (f"  mlflow={j.mlflow_run_id}" if j.mlflow_run_id else "") + (f"  error={j.error[:60]}" if j.error else ""))
            return 0
        job = store.get(args.id)
        if args.jobs_command == "status":
            print(json.dumps(job.as_dict(), indent=2))
            return 0
        if args.jobs_command == "cancel":
            print(_dispatcher(store, _client(args.address) if job.state in ACTIVE else None, args).cancel(job.id))
            return 0
        if args.jobs_command == "logs":
            return _logs(store, job, args)
    except UnknownJob as exc:
        print(f"rubiks jobs: {exc.args[0]}", file=sys.stderr)
        return 1
    return 2


def _logs(store, job, args) -> int:
    from rubiks_service.queue.store import TERMINAL

    if not job.submission_id:
        print(f"{job.id} is {job.state}: no logs yet", file=sys.stderr)
        return 1
    client = _client(args.address)
    shown = 0
    while True:
        text = client.get_job_logs(job.submission_id)
        sys.stdout.write(text[shown:])
        sys.stdout.flush()
        shown = len(text)
        if not args.follow or str(client.get_job_status(job.submission_id).value) in ("SUCCEEDED", "FAILED", "STOPPED") \
                or store.get(job.id).state in TERMINAL:
            return 0
        time.sleep(1.0)


@_user_errors("jobs exec")
def _exec(args) -> int:
    """A queued job's command on the cluster: unpack the bundle the job carries in its environment
    and run it with `rubiks train|sweep`, from a folder that lives as long as the job."""
    import tempfile

    from rubiks_service.cli import main
    from rubiks_service.config_files import ConfigError
    from rubiks_service.queue.spec import BUNDLE_ENV, entry_path, write_bundle

    if BUNDLE_ENV not in os.environ:
        raise ConfigError(f"{BUNDLE_ENV} is not set: `jobs exec` runs inside a job started by the dispatcher")
    with tempfile.TemporaryDirectory(prefix="rubiks-job-") as folder:
        write_bundle(json.loads(os.environ[BUNDLE_ENV]), folder)
        return main([args.kind, entry_path(args.kind, folder)])


@_user_errors("serve")
def _serve(args) -> int:
    store = _store(args)
    address = args.address
    if not address:  # the embedded default: a local Ray instance with its dashboard on 127.0.0.1
        import ray

        ctx = ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1", num_cpus=args.num_cpus)
        address = "http://" + ctx.dashboard_url
    dispatcher = _dispatcher(store, _client(address), args)
    print(f"[serve] dispatching {store.url} to {address} (max {args.max_running} running)", flush=True)
    dispatcher.serve(poll_s=args.poll, until_idle=args.until_idle, progress=lambda m: print(f"[serve] {m}", flush=True))
    return 0


def _job_kinds():
    from rubiks_service.queue.spec import KINDS

    return KINDS


def _queue_args(p: argparse.ArgumentParser, *, tracking: bool = False) -> None:
    """Where the queue is; `tracking`: also the MLflow store the jobs' runs are looked up in."""
    p.add_argument("--queue-url", help="job database URL (default: RUBIKS_QUEUE_URL or sqlite under the storage path)")
    if tracking:
        add_tracking_args(p)
    else:
        p.add_argument("--storage-path", default="runs", help="where the default queue database lives (default: runs)")


def add_parsers(sub) -> None:
    submit = sub.add_parser("submit", help="queue a job (jobs/*.yaml)")
    submit.add_argument("spec")
    submit.add_argument("--priority", type=int, help="override the spec's priority (higher first)")
    submit.add_argument("--address", help="Ray dashboard URL: also submit at once if capacity allows")
    add_json(submit)
    _queue_args(submit, tracking=True)
    submit.set_defaults(func=_submit)

    jobs = sub.add_parser("jobs", help="list, inspect, follow and cancel queued jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True)
    lst = jsub.add_parser("list")
    lst.add_argument("--state", action="append", help="only these states")
    add_json(lst)
    _queue_args(lst)
    for name in ("status", "logs", "cancel"):
        p = jsub.add_parser(name)
        p.add_argument("id")
        p.add_argument("--address", help=f"Ray dashboard URL (default: RAY_DASHBOARD_ADDRESS or {DEFAULT_DASHBOARD})")
        if name == "logs":
            p.add_argument("--follow", action="store_true")
        _queue_args(p)
    migrate = jsub.add_parser("migrate", help="bring the queue database's schema to this release's (also done on start)")
    add_json(migrate)
    _queue_args(migrate)
    for p in (lst, migrate, *(jsub.choices[n] for n in ("status", "logs", "cancel"))):
        p.set_defaults(func=_jobs)
    run = jsub.add_parser("exec", help="(on the cluster) run the bundle a queued job carries")
    run.add_argument("kind", choices=LazyChoices(_job_kinds), metavar="KIND", help="%(choices)s")
    run.set_defaults(func=_exec)

    serve = sub.add_parser("serve", help="run the dispatcher (queue -> Ray Jobs)")
    serve.add_argument("--address", help="Ray dashboard URL (default: start a local Ray instance)")
    serve.add_argument("--max-running", type=int, default=1)
    serve.add_argument("--poll", type=float, default=2.0, help="seconds between queue/cluster checks")
    serve.add_argument("--until-idle", action="store_true", help="exit once nothing is queued or running")
    serve.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray instance")
    serve.add_argument("--launcher", help="command that runs the CLI on the cluster (default: rubiks; "
                                          "this interpreter for the embedded local Ray)")
    _queue_args(serve, tracking=True)
    serve.set_defaults(func=_serve)
