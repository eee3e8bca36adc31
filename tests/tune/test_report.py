"""The sweep report on a real MLflow store: one self-contained HTML file with the conclusions, the
frontier plot, the comparison table and, for each frontier point, its per-class results; opened in
headless Chromium, its images decode and its table shows every point."""
import os

import pytest

from rubiks_service.tracking.mlflow_store import log_metrics, make_client, tracked_run
from rubiks_service.tracking.replicates import conclusions, group_points
from rubiks_service.tracking.sweep_results import PARENT_TAG, sweep_points
from rubiks_service.tune.report import log_sweep_report


def test_report_renders_with_every_point(tmp_path):
    client = make_client("sqlite:///" + str(tmp_path / "mlflow.db"))
    with tracked_run(client, "rep", "sweep", tags={PARENT_TAG: "parent"}) as parent:
        for label, kind, accs, gmacs in (("rn", "rubiksnet", (0.80, 0.82, 0.81), 0.011),
                                         ("tsm", "tsm", (0.60, 0.64, 0.62), 0.010)):
            for seed, acc in enumerate(accs):
                tags = {"rubiks.label": label, "rubiks.point": label, "rubiks.seed": str(seed), "rubiks.kind": kind}
                with tracked_run(client, "rep", f"{label}-{seed}", parent_run_id=parent, tags=tags) as rid:
                    log_metrics(client, rid, {"1clip_top1": acc, "gmacs": gmacs, "mparams": 0.1})
                    for epoch in (1, 2, 3):
                        log_metrics(client, rid, {"val_top1": acc * epoch / 3}, step=epoch)
        points = sweep_points(client, "rep", parent)
        groups = group_points(points)
        path = log_sweep_report(client, parent, "Sweep 'rep'", points, groups,
                                [c.as_dict() for c in conclusions(groups)])
    local = client.download_artifacts(parent, path, str(tmp_path / "dl"))
    body = open(local).read()
    assert "rn beats tsm" in body and "0.810 ± " in body and "data:image/png;base64," in body
    assert {a.path for a in client.list_artifacts(parent, "report")} >= {"report/sweep_report.html", "report/frontier.png",
                                                                          "report/curves.png"}

    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail(f"{chromium} is missing: scripts/test.sh installs it (apt-get install chromium)")
    from tests.deploy.browser import open_page

    with open_page("file://" + local, width=1200, height=900) as page:
        assert page.locator("table tbody tr").count() == 2
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert widths and all(w > 300 for w in widths)
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
