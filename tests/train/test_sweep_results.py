"""Sweep bookkeeping on a real MLflow SQLite store: closing scheduler-killed trials, the Pareto
frontier and its artifacts, finding the latest sweep."""
import pytest

from rubiks_service.tracking.mlflow_store import log_metrics, make_client, tracked_run
from rubiks_service.tracking.pareto import pareto_front
from rubiks_service.tracking.sweep_results import (
    PARENT_TAG,
    close_orphaned_children,
    latest_sweep,
    log_frontier,
    sweep_points,
)


def test_pareto_front_keeps_only_undominated_points():
    pts = [{"a": 0.9, "c": 2.0}, {"a": 0.8, "c": 1.0}, {"a": 0.7, "c": 1.5}, {"a": 0.95, "c": 3.0}, {"a": 0.8, "c": 1.0}]
    front = pareto_front(pts, accuracy="a", cost="c")
    assert [(p["a"], p["c"]) for p in front] == [(0.8, 1.0), (0.8, 1.0), (0.9, 2.0), (0.95, 3.0)]


@pytest.fixture
def client(tmp_path):
    return make_client("sqlite:///" + str(tmp_path / "mlflow.db"))


def test_sweep_bookkeeping(client):
    with tracked_run(client, "exp", "sweep", tags={PARENT_TAG: "parent"}) as parent:
        finished = []
        for label, acc, gmacs in (("small", 0.8, 0.01), ("big", 0.95, 0.05), ("worse", 0.7, 0.02)):
            with tracked_run(client, "exp", label, parent_run_id=parent, tags={"rubiks.label": label}) as rid:
                log_metrics(client, rid, {"1clip_top1": acc, "gmacs": gmacs, "mparams": gmacs * 10})
                finished.append(rid)
        # a trial the scheduler killed: its run was left RUNNING
        killed = client.create_run(client.get_experiment_by_name("exp").experiment_id,
                                   tags={"mlflow.parentRunId": parent}).info.run_id
        log_metrics(client, killed, {"val_top1": 0.2}, step=1)
        with pytest.raises(RuntimeError):
            with tracked_run(client, "exp", "broken", parent_run_id=parent):
                raise RuntimeError("trial crashed")

        assert close_orphaned_children(client, "exp", parent) == 1
        closed = client.get_run(killed)
        assert closed.info.status == "FINISHED" and closed.data.tags["stopped_early"] == "true"

        points = sweep_points(client, "exp", parent)
        assert [p["label"] for p in points] == ["small", "worse", "big"]  # finished, evaluated, by cost
        png = log_frontier(client, parent, points)
        assert png.endswith("pareto/pareto.png")
    run = client.get_run(parent)
    assert run.info.status == "FINISHED" and run.data.tags["best_trial"] == "big"
    text = client.download_artifacts(parent, "pareto/pareto_gmacs.txt")
    body = open(text).read()
    assert "small" in body and "big" in body and "worse" not in body
    assert latest_sweep(client, "exp").info.run_id == parent
    statuses = {r.info.run_name: r.info.status for r in client.search_runs([run.info.experiment_id])}
    assert statuses["broken"] == "FAILED"
