"""`rubiks submit`, `rubiks jobs list|status|logs|cancel|migrate`, `rubiks serve`.

A user error (a bad spec, an unreachable or too-new queue database, an unreachable Ray, an unknown
job) is a `UserError`: one redacted line on stderr and exit code 2 (`_common.run_command`), never a
traceback. `submit` is atomic from the user's view: the job is queued and its id printed, or nothing is
queued (Ray is checked before the job is added; a later dispatch failure shows in `jobs status`)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from rubiks_service.redact import one_line, redact_url

from ._common import LazyChoices, RayUnreachable, add_json, add_tracking_args, print_json, print_result, user_error

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"


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
        if os.stat(path).st_mode & 0o077:  # as ssh does with a key: a token others can read is not secret
            raise RayUnreachable(f"the Ray token file {path} is readable by other users: chmod 600 {path}")
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
        raise RayUnreachable(f"cannot reach the Ray Jobs API at {redact_url(url)}: {redact_url(reason)}") from None


def _dashboard(address: str | None) -> str:
    """The Jobs API's URL; a TCP check first, so an address nobody answers on fails within
    `CONNECT_TIMEOUT_S` (Ray's client would wait on its own timeouts)."""
    import socket
    from urllib.parse import urlsplit

    from ._common import CONNECT_TIMEOUT_S

    address = address or os.environ.get("RAY_DASHBOARD_ADDRESS") or os.environ.get("RAY_ADDRESS") or DEFAULT_DASHBOARD
    shown = redact_url(address)
    if address.startswith("ray://") or address == "auto" or ":6379" in address:
        raise RayUnreachable(f"{shown!r} is a GCS address; the Jobs API wants the dashboard URL, e.g. {DEFAULT_DASHBOARD}")
    url = address if "://" in address else f"http://{address}"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RayUnreachable(f"Ray dashboard address {shown!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RayUnreachable(f"Ray dashboard address {shown!r} is not an http(s) URL, e.g. {DEFAULT_DASHBOARD}")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except TimeoutError:
        raise RayUnreachable(f"cannot reach the Ray Jobs API at {redact_url(url)}: no answer within "
                             f"{CONNECT_TIMEOUT_S} s") from None
    except OSError as exc:
        raise RayUnreachable(f"cannot reach the Ray Jobs API at {redact_url(url)}: {exc.strerror or exc}") from None
    return url


def _submit(args) -> int:
    from rubiks_service.queue.spec import load_job

    spec, bundle = load_job(args.spec, priority=args.priority)  # the job carries these files to the cluster
    store = _store(args)
    client = _client(args.address) if args.address else None  # unreachable: nothing is queued
    job = store.add(spec, bundle)
    if client is not None:  # submit at once as well, if the concurrency limit allows
        try:
            _dispatcher(store, client, args).step()
        except Exception as exc:  # noqa: BLE001 - the job is queued: say so, and why it waits
            print(f"rubiks submit: {job.id} is queued; submitting it to Ray failed: {one_line(exc)}",
                  file=sys.stderr)
        job = store.get(job.id)
        if job.state == "queued" and job.error:  # Ray refused it: still queued, the dispatcher tries again
            print(f"rubiks submit: {job.id} is queued; {job.error}", file=sys.stderr)
    if args.json:
        print_json(job.as_dict())
    else:
        print_result(f"{job.id}  {job.state}  {spec.kind} {spec.name}")
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


def _jobs(args) -> int:
    from rubiks_service.queue.store import ACTIVE

    store = _store(args)  # opening the store migrates its schema to this release's
    if args.jobs_command == "migrate":
        from rubiks_service.queue.schema import current_revision

        revision = current_revision(store.engine)
        if args.json:
            print_json({"queue": store.url, "revision": revision})
        else:
            print_result(f"{store.url}: queue schema at revision {revision}")
        return 0
    if args.jobs_command == "list":
        jobs = store.list(args.state)
        if args.json:
            print_json([j.as_dict() for j in jobs])
        for j in [] if args.json else jobs:
            print_result(f"{j.id:34} {j.state:10} p={j.priority:<3} {j.kind:5} {j.name:24} "
                         f"{j.created_at:%Y-%m-%d %H:%M:%S}" + (f"  mlflow={j.mlflow_run_id}" if j.mlflow_run_id else "")
                         + (f"  error={j.error[:60]}" if j.error else ""))
        return 0
    job = store.get(args.id)  # an unknown id: UnknownJob, one line and exit 2
    if args.jobs_command == "status":
        print_json(job.as_dict())
        return 0
    if args.jobs_command == "cancel":
        print_result(_dispatcher(store, _client(args.address) if job.state in ACTIVE else None, args).cancel(job.id))
        return 0
    return _logs(store, job, args)


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


def _serve(args) -> int:
    if args.max_running < 1 or args.max_running > 1000:
        return user_error("serve", f"--max-running must be 1..1000, got {args.max_running}")
    if not 0.05 <= args.poll <= 3600:
        return user_error("serve", f"--poll must be 0.05..3600 seconds, got {args.poll}")
    if args.num_cpus is not None and not 1 <= args.num_cpus <= 4096:
        return user_error("serve", f"--num-cpus must be 1..4096, got {args.num_cpus}")
    store = _store(args)
    address = args.address
    if not address:  # the embedded default: a local Ray instance with its dashboard on 127.0.0.1
        import ray

        ctx = ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1", num_cpus=args.num_cpus)
        address = "http://" + ctx.dashboard_url
    dispatcher = _dispatcher(store, _client(address), args)
    print(f"[serve] dispatching {store.url} to {redact_url(address)} (max {args.max_running} running)", flush=True)
    dispatcher.serve(poll_s=args.poll, until_idle=args.until_idle, progress=lambda m: print(f"[serve] {m}", flush=True))
    return 0


def _job_states():
    from rubiks_service.queue.store import ACTIVE, QUEUED, TERMINAL

    return (QUEUED, *ACTIVE, *TERMINAL)


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
    lst.add_argument("--state", action="append", choices=LazyChoices(_job_states), metavar="STATE",
                     help="only jobs in this state (repeatable): %(choices)s")
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
