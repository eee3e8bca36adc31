"""The Pareto frontier and its plot, on plain points."""
import inspect

from rubiks_service.tracking.pareto import pareto_front, plot_frontier
from rubiks_service.tracking.sweep_results import ACCURACY, COSTS


def test_pareto_front_keeps_only_undominated_points():
    pts = [{"a": 0.9, "c": 2.0}, {"a": 0.8, "c": 1.0}, {"a": 0.7, "c": 1.5}, {"a": 0.95, "c": 3.0}, {"a": 0.8, "c": 1.0}]
    front = pareto_front(pts, accuracy="a", cost="c")
    assert [(p["a"], p["c"]) for p in front] == [(0.8, 1.0), (0.8, 1.0), (0.9, 2.0), (0.95, 3.0)]


def test_plot_defaults_to_the_logged_metric_names(tmp_path):
    defaults = inspect.signature(plot_frontier).parameters
    assert defaults["accuracy"].default == ACCURACY == "1clip_top1" and defaults["costs"].default == COSTS
    points = [{"label": "a", "kind": "rubiksnet", "1clip_top1": 0.5, "gmacs": 0.01, "mparams": 0.05},
              {"label": "b", "kind": "tsm", "1clip_top1": 0.6, "gmacs": 0.02, "mparams": 0.08}]
    assert (tmp_path / "p.png").samefile(plot_frontier(points, str(tmp_path / "p.png")))
