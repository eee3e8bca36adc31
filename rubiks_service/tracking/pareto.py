"""The accuracy-vs-cost Pareto frontier of a sweep, as a table and a PNG plot."""
from __future__ import annotations

import os
from collections.abc import Sequence

from rubiks_service.train.metric_names import GMACS, LATENCY_MS, MPARAMS, ONE_CLIP_TOP1


def pareto_front(points: Sequence[dict], *, accuracy: str, cost: str) -> list[dict]:
    """Points not dominated by another (higher-or-equal accuracy at lower-or-equal cost, one strictly),
    sorted by cost."""
    front = []
    for p in points:
        dominated = any(
            q[accuracy] >= p[accuracy] and q[cost] <= p[cost] and (q[accuracy] > p[accuracy] or q[cost] < p[cost])
            for q in points
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p[cost], -p[accuracy]))


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    def fmt(v):
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


FAMILY_STYLE = {  # one colour per family on the plot
    "rubiksnet": ("o", "tab:blue"),
    "tsm": ("^", "tab:orange"),
    "per-frame": ("s", "tab:gray"),
    "baseline": ("D", "tab:purple"),
}
COST_LABELS = {GMACS: "GMACs per clip", MPARAMS: "parameters (M)", LATENCY_MS: "latency (ms per clip)"}


def plot_frontier(points: Sequence[dict], path: str, *, accuracy: str = ONE_CLIP_TOP1,
                  costs: Sequence[str] = (GMACS, MPARAMS), label: str = "label", error: str | None = None,
                  panel_size: tuple[float, float] = (5.5, 4.2), label_size: float = 6) -> str:
    """One panel per cost: every point in its family's colour (with `error`, the key of a 95% half-width:
    drawn as an error bar), each family's frontier ringed and joined in that colour, and the frontier
    over all families as a thin dashed black line. Labels alternate above and below the points in cost
    order, so that neighbours do not overprint; `panel_size` (inches) and `label_size` (points) make
    the one-panel picture of a report readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(costs), figsize=(panel_size[0] * len(costs), panel_size[1]), squeeze=False)
    for ax, cost in zip(axes[0], costs):
        have = [p for p in points if cost in p]
        order = list(FAMILY_STYLE)
        kinds = sorted({p.get("kind", "baseline") for p in have}, key=lambda k: (order.index(k) if k in order else 99, k))
        for kind in kinds:
            marker, color = FAMILY_STYLE.get(kind, ("x", "black"))
            pts = [p for p in have if p.get("kind", "baseline") == kind]
            ax.scatter([p[cost] for p in pts], [p[accuracy] for p in pts], marker=marker, color=color,
                       label=kind, zorder=3)
            bars = [p for p in pts if error and p.get(error) == p.get(error) and p.get(error) is not None]
            if bars:  # NaN (a single replicate) has no bar
                ax.errorbar([p[cost] for p in bars], [p[accuracy] for p in bars], yerr=[p[error] for p in bars],
                            fmt="none", ecolor=color, elinewidth=1.2, capsize=3, zorder=2)
            front = pareto_front(pts, accuracy=accuracy, cost=cost)  # ringed, joined when more than one point
            ax.plot([p[cost] for p in front], [p[accuracy] for p in front], "-", color=color, alpha=0.8,
                    marker="o", markersize=11, markerfacecolor="none", label=f"{kind} frontier")
        overall = pareto_front(have, accuracy=accuracy, cost=cost)
        ax.plot([p[cost] for p in overall], [p[accuracy] for p in overall], "--", color="black", lw=0.8,
                label="overall frontier")
        for i, p in enumerate(sorted(have, key=lambda p: p[cost])):
            ax.annotate(str(p.get(label, ""))[:28], (p[cost], p[accuracy]), fontsize=label_size,
                        xytext=(4, 8 if i % 2 else -12), textcoords="offset points")
        ax.set_xlabel(COST_LABELS.get(cost, cost))
        ax.set_ylabel(accuracy + (" (95% interval over seeds)" if error else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Accuracy vs cost, by family")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
