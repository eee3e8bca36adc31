"""The sweep report: one self-contained HTML file (images inlined) logged on the sweep's parent run as
`report/sweep_report.html`, with its pictures beside it as PNGs, for the person who opens the sweep:

    the conclusions (which point beats which over seeds, which are tied)
    the frontier plot at a readable size (means, 95% intervals as bars, one colour per family)
    the comparison table (n, mean ± 95% interval, seed-to-seed sd, GMACs, latency and its ratio)
    for each frontier point: its per-class accuracy and confusion matrix (from its best replicate's
      `evaluation/` artifacts, see tracking/class_results.py)
    a few validation clips (frames as images) with what the most accurate point predicts for them
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import tempfile

import numpy as np
import torch

from rubiks_service.data.clip_spec import ClipMode, ClipSpec, clip_indices, make_views
from rubiks_service.data.manifest import read_manifest
from rubiks_service.data.transforms import normalize
from rubiks_service.data.video import read_frames
from rubiks_service.tracking.pareto import plot_frontier
from rubiks_service.tracking.replicates import TEST_NAME, best_replicate
from rubiks_service.tracking.sweep_results import CI95, LATENCY_RATIO, MEAN, frontier
from rubiks_service.train.metric_names import GMACS, LATENCY_MS
from rubiks_service.train.trainer import load_trained_model

from .point_latency import CHECKPOINT_ARTIFACT

FOLDER = "report"
SAMPLE_CLIPS = 6  # validation clips shown with predictions
FRAMES_SHOWN = 4  # frames per clip in the strip


def log_sweep_report(client, parent_run_id: str, title: str, points: list[dict], groups: list[dict],
                     verdicts: list[dict]) -> str:
    """Write and log the report; returns its artifact path."""
    with tempfile.TemporaryDirectory() as tmp:
        front = frontier(groups)
        images = {"frontier.png": plot_frontier(groups, os.path.join(tmp, "frontier.png"), accuracy=MEAN,
                                                costs=(GMACS,), error=CI95, panel_size=(8, 5), label_size=9)}
        sections = [_conclusions(verdicts), _img("frontier.png", images, "accuracy vs GMACs"), _table(groups)]
        curves = _curves_png(client, groups, os.path.join(tmp, "curves.png"))
        if curves:
            images["curves.png"] = curves
            sections.append("<h2>Validation top-1 per epoch (mean over seeds, band: min to max)</h2>"
                            + _img("curves.png", images, "per-epoch curves"))
        for g in front:
            run_id = best_replicate(points, g)["run_id"]
            sections.append(_class_results(client, run_id, g["label"], tmp, images))
        best = max(groups, key=lambda g: g[MEAN])
        sections.append(_sample_predictions(client, best_replicate(points, best)["run_id"], best["label"], tmp, images))
        page = _page(title, sections)
        path = os.path.join(tmp, "sweep_report.html")
        with open(path, "w") as f:
            f.write(page)
        client.log_artifacts(parent_run_id, tmp, artifact_path=FOLDER)
    return f"{FOLDER}/sweep_report.html"


def _curves_png(client, groups: list[dict], path: str) -> str | None:
    """Each point's per-epoch `val_top1` over its replicates: the mean as a line, min to max as a band,
    so a user sees whether the runs reached a plateau and how far the seeds spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    drawn = False
    for g in groups:
        curves = [{m.step: m.value for m in client.get_metric_history(r, "val_top1")} for r in g["run_ids"]]
        epochs = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if not epochs:
            continue
        values = np.array([[c[e] for e in epochs] for c in curves])
        line, = ax.plot(epochs, values.mean(0), marker="o", markersize=3, label=f"{g['label']} (n={len(curves)})")
        ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel("val top-1 (1 clip)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(groups: list[dict]) -> str:
    front = {g["label"] for g in frontier(groups)}
    head = ["point", "family", "model", "n", "1-clip top-1 (95% CI)", "sd over seeds", "2-clip top-1", "GMACs",
            "latency ms", "latency / reference", "on frontier"]
    rows = []
    for g in sorted(groups, key=lambda g: -g.get(MEAN, 0.0)):
        ci = f"{_fmt(g.get(MEAN))} ± {_fmt(g.get(CI95))}" if _fmt(g.get(CI95)) else _fmt(g.get(MEAN))
        rows.append([g["label"], g["kind"], g["model"], g["n"], ci, _fmt(g.get("1clip_top1_std")),
                     _fmt(g.get("2clip_top1_mean")), _fmt(g.get(GMACS), 4), _fmt(g.get(LATENCY_MS), 1),
                     _fmt(g.get(LATENCY_RATIO), 2), "yes" if g["label"] in front else ""])
    return "<h2>Comparison</h2>" + _html_table(head, rows)


def _html_table(head, rows) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + cells + "</tbody></table>")


def _conclusions(verdicts: list[dict]) -> str:
    items = "".join(f"<li>{html.escape(v['text'])}</li>" for v in verdicts) or "<li>fewer than two points</li>"
    return f"<h2>Conclusions</h2><p class='note'>{html.escape(TEST_NAME)}; otherwise tied.</p><ul>{items}</ul>"


def _img(name: str, images: dict, alt: str) -> str:
    data = base64.b64encode(open(images[name], "rb").read()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _class_results(client, run_id: str, label: str, tmp: str, images: dict) -> str:
    """A frontier point's per-class accuracy and confusion matrix, as its run logged them."""
    out = f"<h2>{html.escape(label)}: per class (best replicate, run {run_id[:8]})</h2>"
    try:
        table = json.load(open(client.download_artifacts(run_id, "evaluation/per_class_1clip.json", tmp)))
        png = client.download_artifacts(run_id, "evaluation/confusion_1clip.png", tmp)
    except Exception:  # noqa: BLE001 - a run from before per-class results were logged
        return out + "<p>no per-class results logged for this run</p>"
    name = f"confusion_{run_id[:8]}.png"
    images[name] = os.path.join(tmp, name)
    os.replace(png, images[name])
    columns = table["columns"]
    rows = [[_fmt(v) if isinstance(v, float) else v for v in row] for row in table["data"]]
    return out + "<div class='pair'>" + _html_table(columns, rows) + _img(name, images, f"confusion of {label}") + "</div>"


def _sample_predictions(client, run_id: str, label: str, tmp: str, images: dict) -> str:
    """A few validation clips (one per class while they last), a strip of their frames each, with the
    model's top-1 (and whether it is right)."""
    try:
        path = client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, tmp)
    except Exception:  # noqa: BLE001
        return ""
    model, cfg, classes = load_trained_model(path)
    manifest = read_manifest(cfg.data.val_manifest, data_root=cfg.data.data_root, classes=classes)
    chosen, seen = [], set()
    for record in manifest.records:
        if record.label not in seen:
            seen.add(record.label)
            chosen.append(record)
        if len(chosen) == SAMPLE_CLIPS:
            break
    spec = ClipSpec(segments=cfg.data.segments, crop_size=cfg.data.crop_size, mode=ClipMode.ONE_CLIP)
    cards = []
    for i, record in enumerate(chosen):
        try:
            count = record.num_frames or len(read_frames(record.path, np.arange(1)))
            idx = clip_indices(count, spec.segments, spec.mode)
            views, _ = make_views([read_frames(record.path, ix) for ix in idx], record.label, spec,
                                  np.random.default_rng(0))
        except Exception:  # noqa: BLE001 - an unreadable clip is left out of the report
            continue
        with torch.inference_mode():
            probs = torch.softmax(model(normalize(torch.from_numpy(views))), dim=1).mean(0)
        top = int(probs.argmax())
        name = f"clip_{i}.png"
        images[name] = _strip(views[0], os.path.join(tmp, name))
        verdict = "right" if top == record.label else "wrong"
        cards.append(f"<figure>{_img(name, images, record.listed_path)}<figcaption>true "
                     f"<b>{html.escape(classes[record.label])}</b>, predicted <b>{html.escape(classes[top])}</b> "
                     f"({float(probs[top]):.0%}, {verdict})</figcaption></figure>")
    return (f"<h2>Validation clips, as {html.escape(label)} (best replicate) sees them</h2>"
            + "<div class='clips'>" + "".join(cards) + "</div>")


def _strip(clip: np.ndarray, path: str) -> str:
    """FRAMES_SHOWN evenly spaced frames of a (T, S, S, 3) uint8 clip side by side, enlarged 3x."""
    from PIL import Image

    picks = np.linspace(0, len(clip) - 1, FRAMES_SHOWN).round().astype(int)
    strip = np.concatenate([np.pad(clip[i], ((2, 2), (2, 2), (0, 0)), constant_values=255) for i in picks], axis=1)
    image = Image.fromarray(strip)
    image.resize((image.width * 3, image.height * 3), Image.NEAREST).save(path)
    return path


def _page(title: str, sections: list[str]) -> str:
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "font-size:14px;text-align:left}th{background:#f3f3f3}img{max-width:100%}"
             ".pair{display:flex;gap:2em;align-items:flex-start}.pair img{max-width:55%}"
             ".clips{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0}.note{color:#666}")
    buf = io.StringIO()
    buf.write(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
              f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>")
    for s in sections:
        buf.write(s)
    buf.write("</body></html>\n")
    return buf.getvalue()
