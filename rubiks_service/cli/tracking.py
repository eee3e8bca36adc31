"""`rubiks ui`: the MLflow UI for the local store (or where a server shows it), and the
"browse:" hint other commands end with."""
from __future__ import annotations

import argparse
import sys

from ._common import add_tracking_args


def add_parsers(sub) -> None:
    ui = sub.add_parser("ui", help="the MLflow UI for the local store (127.0.0.1)")
    add_tracking_args(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--experiment", help="land on this experiment's training runs (default: the latest used)")
    ui.set_defaults(func=_ui)


def _ui(args: argparse.Namespace) -> int:
    import subprocess

    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, args.storage_path)
    server = uri if uri.startswith(("http://", "https://")) else f"http://{args.host}:{args.port}"
    landing = experiment_landing(uri, server, args.experiment)
    if server == uri:  # an MLflow server already serves its UI: only say where to look
        print(landing)
        return 0
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI for {uri}: {landing} (Ctrl-C to stop)", flush=True)
    return subprocess.call(cmd)


def browse_hint(tracking_uri: str | None, storage_path: str, experiment: str) -> str:
    """Where a user sees the runs: the server's training-runs view, or the `rubiks ui` command that opens it."""
    import shlex

    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, storage_path)
    if uri.startswith(("http://", "https://")):
        return experiment_landing(uri, uri, experiment)
    return f"{rubiks_command()} ui --tracking-uri {shlex.quote(uri)} --experiment {shlex.quote(experiment)}"


def rubiks_command() -> str:
    """How to run `rubiks` again from any folder, as printed in next steps: `rubiks` when that is what
    the shell finds, else the full path of the executable this process was started as (a venv that is
    not on PATH)."""
    import os
    import shlex
    import shutil

    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) != "rubiks":  # python -m rubiks_service.cli, or a test
        return "rubiks"
    found = shutil.which("rubiks")
    if found and os.path.exists(argv0) and os.path.samefile(found, argv0):
        return "rubiks"
    return shlex.quote(argv0)


def experiment_landing(uri: str, server: str, name: str | None) -> str:
    """The training-runs view of experiment `name` (default: the most recently used one), else the UI root.
    When the experiment holds a sweep, the view opens on its latest sweep's trials (listed flat rather than
    folded under their parent), best point first, with the accuracy and cost columns shown."""
    from rubiks_service.tracking.mlflow_store import experiment_url, make_client
    from rubiks_service.tracking.sweep_results import latest_sweep

    try:
        client = make_client(uri)
        exp_id = None
        if name:
            found = client.get_experiment_by_name(name)
            exp_id = found.experiment_id if found is not None else None
        else:
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                      order_by=["attributes.start_time DESC"], max_results=1)
            exp_id = runs[0].info.experiment_id if runs else None
        if exp_id is None:
            return server
        url = experiment_url(server, exp_id)
        sweep = latest_sweep(client, client.get_experiment(exp_id).name)
        return url + (sweep_view_query(sweep.info.run_id) if sweep is not None else "")
    except Exception:  # noqa: BLE001 - an empty or unreachable store still gets the UI root
        return server


def sweep_view_query(parent_run_id: str) -> str:
    """URL parameters of the runs view: the shared view the sweep stored (`share_sweep_view`): its trials
    flat, sorted by their point's mean accuracy, the accuracy and cost columns shown."""
    from urllib.parse import quote

    return "&viewStateShareKey=" + quote(parent_run_id)
