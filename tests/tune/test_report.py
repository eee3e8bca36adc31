"""What a person opens after a sweep, on a real MLflow store with a sweep's parent and replicate runs:
the sweep report (one self-contained HTML file: conclusions, frontier plot, comparison table, curves),
opened in headless Chromium; and the MLflow UI at the link `rubiks ui` prints, which lands on the sweep's
trials with their accuracy columns, no clicks."""
import os
import sys

import pytest

from rubiks_service.cli.tracking import experiment_landing
from rubiks_service.tracking.mlflow_store import log_metrics, make_client, tracked_run
from rubiks_service.tracking.replicates import conclusions, group_points
from rubiks_service.tracking.sweep_results import PARENT_TAG, log_frontier, sweep_points
from rubiks_service.tune.report import log_sweep_report

from tests.deploy.browser import open_page
from tests.deploy.services import Process, free_port, wait_for

TRIALS = (("rn", "rubiksnet", (0.80, 0.82, 0.81), 0.011), ("tsm", "tsm", (0.60, 0.64, 0.62), 0.010))


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    """A sweep as `run_sweep` leaves it: replicate runs with per-epoch curves, the parent's frontier."""
    root = tmp_path_factory.mktemp("sweep-store")
    uri = "sqlite:///" + str(root / "mlflow.db")
    client = make_client(uri)
    with tracked_run(client, "rep", "sweep", tags={PARENT_TAG: "parent"}) as parent:
        for label, kind, accs, gmacs in TRIALS:
            for seed, acc in enumerate(accs):
                tags = {"rubiks.label": label, "rubiks.point": label, "rubiks.seed": str(seed), "rubiks.kind": kind}
                with tracked_run(client, "rep", f"{label}-seed{seed}", parent_run_id=parent, tags=tags) as rid:
                    log_metrics(client, rid, {"1clip_top1": acc, "gmacs": gmacs, "mparams": 0.1})
                    for epoch in (1, 2, 3):
                        log_metrics(client, rid, {"val_top1": acc * epoch / 3}, step=epoch)
        points = sweep_points(client, "rep", parent)
        log_frontier(client, parent, points)
    return {"uri": uri, "client": client, "parent": parent, "points": points, "root": root}


def test_report_renders_with_every_point(sweep_store, tmp_path):
    client, parent, points = sweep_store["client"], sweep_store["parent"], sweep_store["points"]
    groups = group_points(points)
    path = log_sweep_report(client, parent, "Sweep 'rep'", points, groups, [c.as_dict() for c in conclusions(groups)])
    local = client.download_artifacts(parent, path, str(tmp_path / "dl"))
    body = open(local).read()
    assert "rn beats tsm" in body and "0.810 ± " in body and "data:image/png;base64," in body
    assert {a.path for a in client.list_artifacts(parent, "report")} >= {
        "report/sweep_report.html", "report/frontier.png", "report/curves.png"}
    with open_page("file://" + local, width=1200, height=900) as page:
        assert page.locator("table tbody tr").count() == 2
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert widths and all(w > 300 for w in widths)


def test_the_ui_link_lands_on_the_sweeps_trials_with_their_accuracy(sweep_store, tmp_path):
    port = free_port()
    server = Process("mlflow-ui", [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", sweep_store["uri"],
                                   "--host", "127.0.0.1", "--port", str(port)], dict(os.environ), str(tmp_path))
    try:
        base = f"http://127.0.0.1:{port}"
        import urllib.request

        wait_for(lambda: urllib.request.urlopen(base + "/health", timeout=5).status == 200, "mlflow ui", 180, server)
        url = experiment_landing(sweep_store["uri"], base, "rep")
        assert "viewStateShareKey=" + sweep_store["parent"] in url
        with open_page(url, width=1600, height=800) as page:
            for label, _, accs, _ in TRIALS:  # every trial listed flat, no unfolding
                for seed in range(len(accs)):
                    page.get_by_text(f"{label}-seed{seed}", exact=True).first.wait_for(timeout=120_000)
            page.get_by_text("group_1clip_top1_mean", exact=False).first.wait_for(timeout=30_000)
            body = page.inner_text("body")
            assert "1clip_top1" in body and "gmacs" in body
            assert body.index("rn-seed0") < body.index("tsm-seed0")  # best point first
            for value in ("0.81", "0.62"):  # the points' means, in the group column
                assert value in body
    finally:
        server.stop()
