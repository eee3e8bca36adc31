"""Replicate groups and comparisons over seeds (plain data, no store)."""
import math

import pytest

from rubiks_service.tracking.replicates import compare, conclusions, group_points, json_ready, mean_ci95


def _trial(point, seed, acc, kind="rubiksnet", gmacs=0.01, model="rubiksnet-nano"):
    return {"label": point, "point": point, "seed": str(seed), "kind": kind, "model": model, "1clip_top1": acc,
            "gmacs": gmacs, "mparams": 0.1, "run_id": f"{point}-{seed}", "settings": {"seed": str(seed)}}


def test_mean_and_t_interval():
    mean, sd, half = mean_ci95([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and sd == pytest.approx(0.1)
    assert half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)  # t(0.975, 2)
    assert math.isnan(mean_ci95([0.4])[2]) and math.isnan(mean_ci95([])[0])


def test_groups_collect_a_points_replicates():
    trials = [_trial("a", s, acc) for s, acc in enumerate((0.70, 0.72, 0.74))] + [_trial("b", 0, 0.5, gmacs=0.02)]
    groups = {g["label"]: g for g in group_points(trials)}
    a = groups["a"]
    assert a["n"] == 3 and a["seeds"] == ["0", "1", "2"] and a["run_ids"] == ["a-0", "a-1", "a-2"]
    assert a["1clip_top1_mean"] == pytest.approx(0.72) and a["1clip_top1_ci95"] > 0
    assert groups["b"]["n"] == 1 and math.isnan(groups["b"]["1clip_top1_ci95"])
    assert json_ready(groups["b"])["1clip_top1_ci95"] is None


def test_beats_only_beyond_the_noise():
    far = group_points([_trial("a", s, v) for s, v in enumerate((0.80, 0.81, 0.82))]
                       + [_trial("b", s, v) for s, v in enumerate((0.60, 0.62, 0.61))])
    a, b = sorted(far, key=lambda g: g["label"])
    win = compare(a, b)
    assert win.significant and win.verdict == "beats" and "a beats b" in win.sentence()
    near = group_points([_trial("a", s, v) for s, v in enumerate((0.70, 0.78, 0.62))]
                        + [_trial("b", s, v) for s, v in enumerate((0.69, 0.75, 0.66))])
    a, b = sorted(near, key=lambda g: g["label"])
    tie = compare(a, b)
    assert not tie.significant and tie.verdict == "tied" and "tied" in tie.sentence()
    single = group_points([_trial("a", 0, 0.9), _trial("b", 0, 0.1)])
    assert not compare(*single).significant and "not tested" in compare(*single).sentence()


def test_conclusions_pair_the_best_and_matching_macs():
    trials = ([_trial("rn", s, v, gmacs=0.010) for s, v in enumerate((0.80, 0.82, 0.81))]
              + [_trial("rn-big", s, v, gmacs=0.030) for s, v in enumerate((0.70, 0.74, 0.72))]
              + [_trial("tsm-small", s, v, kind="tsm", gmacs=0.011, model="tsm-nano") for s, v in enumerate((0.6, 0.61, 0.62))]
              + [_trial("tsm-big", s, v, kind="tsm", gmacs=0.028, model="tsm-micro") for s, v in enumerate((0.7, 0.73, 0.76))])
    pairs = {frozenset((c.a, c.b)) for c in conclusions(group_points(trials))}
    assert frozenset(("rn", "rn-big")) in pairs and frozenset(("rn", "tsm-small")) in pairs
    assert frozenset(("rn-big", "tsm-big")) in pairs  # the TSM nearest in MACs
    assert len(pairs) == 4  # rn vs each of 3 others, plus rn-big vs tsm-big; rn vs tsm-small once
