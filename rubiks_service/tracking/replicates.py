"""Seeds as replicates: a sweep point's trials (one per seed) summarised as one group, and
comparisons between groups that say whether a difference is larger than the seed-to-seed noise.

    group_points(points)  -> one row per point: n, seeds, <metric>_mean / _std / _ci95 of every
                             accuracy metric, the costs, the replicate runs
    compare(a, b, metric) -> Welch's two-sided t-test over the replicates (unequal variances):
                             "A beats B" only when p < ALPHA, else the two are tied (within noise)
    conclusions(groups)   -> the comparisons a sweep prints: the best point against each other point,
                             and each point against the other family's point at the nearest GMACs

The 95% interval of a mean is Student's t: mean ± t(0.975, n-1) · sd / √n (a half-width, `_ci95`);
with one replicate there is no interval (NaN) and no comparison is significant.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rubiks_service.train.metric_names import (
    GMACS,
    LATENCY_MS,
    MPARAMS,
    ONE_CLIP_TOP1,
    REALISED_BUDGET,
    TWO_CLIP_TOP1,
    VAL_TOP1,
)

ALPHA = 0.05  # the significance level of every "beats"
TEST_NAME = "Welch's t-test over seeds, two-sided, p < 0.05"
ACCURACY_METRICS = (ONE_CLIP_TOP1, TWO_CLIP_TOP1, VAL_TOP1)
SPREAD_METRICS = (*ACCURACY_METRICS, REALISED_BUDGET)  # summarised as mean / std / ci95
SAME_COSTS = (GMACS, MPARAMS)  # a property of the architecture: equal over a point's seeds


def mean_ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, sample standard deviation, 95% half-width) of replicate values; NaN where undefined."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, math.nan
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd, float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def group_key(point: dict) -> str:
    return point.get("point") or point["label"]


def group_points(points: Sequence[dict]) -> list[dict]:
    """One row per sweep point from its replicate trials (points as `sweep_results.sweep_points` gives
    them), sorted by GMACs then label."""
    by_key: dict[str, list[dict]] = {}
    for p in points:
        by_key.setdefault(group_key(p), []).append(p)
    rows = []
    for key, reps in by_key.items():
        reps = sorted(reps, key=lambda p: str(p.get("seed", "")))
        first = reps[0]
        row = {"label": key, "kind": first["kind"], "model": first["model"], "n": len(reps),
               "seeds": [p.get("seed", "") for p in reps], "settings": dict(first.get("settings", {})),
               "run_ids": [p["run_id"] for p in reps]}
        for metric in SPREAD_METRICS:
            values = [p[metric] for p in reps if isinstance(p.get(metric), int | float)]
            if values:
                row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_ci95"] = mean_ci95(values)
                row[f"{metric}_values"] = values
        for cost in SAME_COSTS:
            if cost in first:
                row[cost] = first[cost]
        for key_ in (LATENCY_MS, "latency_ratio"):  # measured once per point, after the sweep
            if key_ in first:
                row[key_] = first[key_]
        rows.append(row)
    return sorted(rows, key=lambda r: (r.get(GMACS, 0.0), r["label"]))


def best_replicate(points: Sequence[dict], group: dict, metric: str = ONE_CLIP_TOP1) -> dict:
    """The group's most accurate replicate trial (the model a user takes away from that point)."""
    return max((p for p in points if p["run_id"] in group["run_ids"]), key=lambda p: p.get(metric, 0.0))


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    metric: str
    difference: float  # mean(a) - mean(b)
    p_value: float  # NaN: fewer than two replicates on a side
    n: tuple[int, int]

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < ALPHA

    @property
    def verdict(self) -> str:
        if not self.significant:
            return "tied"
        return "beats" if self.difference > 0 else "trails"

    def sentence(self) -> str:
        d = f"{100 * self.difference:+.1f} points"
        if math.isnan(self.p_value):
            return f"{self.a} vs {self.b}: {d}, not tested (n = {self.n[0]} and {self.n[1]}; need 2+ seeds each)"
        if self.significant:
            winner, loser = (self.a, self.b) if self.difference > 0 else (self.b, self.a)
            return f"{winner} beats {loser} by {abs(100 * self.difference):.1f} points (p = {self.p_value:.3f})"
        return f"{self.a} and {self.b} are tied: {d} is within noise (p = {self.p_value:.2f})"

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "metric": self.metric, "difference": self.difference,
                "p_value": None if math.isnan(self.p_value) else self.p_value, "n": list(self.n),
                "verdict": self.verdict, "test": TEST_NAME, "text": self.sentence()}


def compare(a: dict, b: dict, metric: str = ONE_CLIP_TOP1) -> Comparison:
    """Group `a` against group `b` on `metric` over their replicates (Welch's t-test)."""
    xs, ys = a.get(f"{metric}_values", []), b.get(f"{metric}_values", [])
    diff = (sum(xs) / len(xs) - sum(ys) / len(ys)) if xs and ys else math.nan
    p = math.nan
    if len(xs) >= 2 and len(ys) >= 2:
        if _var(xs) == 0 and _var(ys) == 0:  # no spread at all: any difference is real, none is a tie
            p = 0.0 if diff != 0 else 1.0
        else:
            from scipy import stats

            p = float(stats.ttest_ind(xs, ys, equal_var=False).pvalue)
    return Comparison(a["label"], b["label"], metric, diff, p, (len(xs), len(ys)))


def _var(values: Sequence[float]) -> float:
    m = sum(values) / len(values)
    return sum((v - m) ** 2 for v in values)


def conclusions(groups: Sequence[dict], metric: str = ONE_CLIP_TOP1) -> list[Comparison]:
    """The comparisons worth printing: the best point (by mean) against every other point, then each
    RubiksNet point against the TSM point nearest in GMACs (the paper's comparison at matching cost).
    Each pair once."""
    have = [g for g in groups if f"{metric}_mean" in g]
    if len(have) < 2:
        return []
    best = max(have, key=lambda g: g[f"{metric}_mean"])
    pairs = [(best, g) for g in have if g is not best]
    tsm = [g for g in have if g["kind"] == "tsm" and GMACS in g]
    for g in have:
        if g["kind"] == "rubiksnet" and tsm and GMACS in g:
            nearest = min(tsm, key=lambda t: abs(math.log(t[GMACS] / g[GMACS])))
            pairs.append((g, nearest))
    seen, out = set(), []
    for a, b in pairs:
        key = frozenset((a["label"], b["label"]))
        if key not in seen:
            seen.add(key)
            out.append(compare(a, b, metric))
    return out


def json_ready(value):
    """`value` with every NaN float as None (JSON has no NaN: `--json` output and logged files)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
