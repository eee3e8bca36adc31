"""A training run's results per class: per-class accuracy and the confusion matrix of each end-of-run
evaluation protocol, logged to its MLflow run as tables (`log_table`: the UI's artifact view shows
them as tables) and one PNG per protocol (`log_figure`).

Where a user looks for the classes a model confuses (in the synthetic motion data, the time-reversed
pairs such as `fade_out` / `recede`): `evaluation/confusion_<protocol>.png`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

FOLDER = "evaluation"
ANNOTATE_UP_TO = 30  # classes: counts written in the cells up to this many, beyond they would not fit


def per_class_rows(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> list[dict]:
    """One row per class: its clips, correct (top-1), accuracy and the class it is most taken for."""
    rows = []
    for i, (name, row) in enumerate(zip(classes, confusion)):
        clips = int(sum(row))
        wrong = [(n, j) for j, n in enumerate(row) if j != i and n > 0]
        confused = max(wrong)[1] if wrong else None
        rows.append({"class": name, "clips": clips, "correct": int(row[i]),
                     "accuracy": row[i] / clips if clips else float("nan"),
                     "most_confused_with": classes[confused] if confused is not None else ""})
    return rows


def confusion_rows(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> list[dict]:
    """The matrix in long form (true, predicted, clips), non-zero cells only: a table any size of which
    the UI can filter."""
    return [{"true": classes[i], "predicted": classes[j], "clips": int(n)}
            for i, row in enumerate(confusion) for j, n in enumerate(row) if n]


def confusion_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str):
    """A heatmap of each true class's share per predicted class (rows sum to 1), with the counts written in
    for few classes; each row's label carries the class's accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(confusion, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    side = min(max(4.0, 0.45 * k + 2.5), 16.0)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's clips")
    ticks = range(k)
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=60, ha="right", fontsize=8 if k > 15 else 9)
    accuracy = np.diag(shares)
    ax.set_yticks(ticks, [f"{c} ({a:.0%})" for c, a in zip(classes, accuracy)], fontsize=8 if k > 15 else 9)
    ax.set_xlabel("predicted (top-1)")
    ax.set_ylabel("true class (its accuracy)")
    ax.set_title(title)
    if k <= ANNOTATE_UP_TO:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if shares[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def log_class_results(client, run_id: str, confusion: Mapping[str, Sequence[Sequence[int]]],
                      classes: Sequence[str]) -> list[str]:
    """Per protocol: `evaluation/per_class_<p>.json`, `evaluation/confusion_<p>.json` (tables) and
    `evaluation/confusion_<p>.png`. Returns the artifact paths logged."""
    import matplotlib.pyplot as plt
    import pandas as pd

    logged = []
    for protocol, matrix in confusion.items():
        per_class = f"{FOLDER}/per_class_{protocol}.json"
        client.log_table(run_id, pd.DataFrame(per_class_rows(matrix, classes)), per_class)
        cells = f"{FOLDER}/confusion_{protocol}.json"
        client.log_table(run_id, pd.DataFrame(confusion_rows(matrix, classes), columns=["true", "predicted", "clips"]),
                         cells)
        figure = f"{FOLDER}/confusion_{protocol}.png"
        fig = confusion_figure(matrix, classes, f"{protocol} confusion ({int(sum(map(sum, matrix)))} clips)")
        try:
            client.log_figure(run_id, fig, figure)
        finally:
            plt.close(fig)
        logged += [per_class, cells, figure]
    return logged
