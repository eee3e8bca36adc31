"""The built-in motion dataset: small labelled mp4 videos whose classes need time.

Eight classes in four time-reversed pairs: an object moves left / right /
up / down, approaches / recedes (grows / shrinks), fades in / out (its opacity
rises / falls; every other video's object has a random fixed opacity from the
same range). Each trajectory is centred on the middle frame, so a class and its
pair show the same set of frames in opposite order, and every frame of every
class is a textured object at a uniformly random place, size, angle and opacity
over a textured background: no single frame tells the classes apart, and a
per-frame model stays near chance (1/8). Textures, sizes and speeds are random;
everything is deterministic from the seed.

(Rotation clockwise / counter-clockwise was the fourth pair until it proved
unlearnable at this scale: on 240 videos neither RubiksNet-micro nor a small 3D
CNN got above chance on its direction in 10 epochs, which capped every model at
6/8 of the classes.)

Files: OUT/videos/<class>/<id>.mp4 (H.264 via PyAV), OUT/train.csv and
OUT/val.csv (columns path,label,num_frames; paths relative to OUT) and
OUT/classes.txt.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

CLASSES = ("move_left", "move_right", "move_up", "move_down", "approach", "recede", "fade_in", "fade_out")
OPACITY = (0.6, 1.0)  # the range every frame's object opacity is drawn from


@dataclass(frozen=True)
class SynthConfig:
    train_per_class: int = 40
    val_per_class: int = 10
    num_frames: int = 16
    size: int = 64
    fps: int = 8
    seed: int = 0


def _texture(rng: np.random.Generator, n: int, noise: float = 0.15) -> np.ndarray:
    """A random colour texture (n, n, 3) in [0, 1]: coarse blocks plus fine noise."""
    coarse = rng.random((rng.integers(3, 7), rng.integers(3, 7), 3))
    ys = np.linspace(0, coarse.shape[0] - 1, n)
    xs = np.linspace(0, coarse.shape[1] - 1, n)
    rows = np.array([[np.interp(xs, np.arange(coarse.shape[1]), coarse[int(round(y)), :, ch]) for ch in range(3)] for y in ys])
    return np.clip(rows.transpose(0, 2, 1) + noise * rng.standard_normal((n, n, 3)), 0, 1)


def _render(background, texture, cx, cy, radius, angle, opacity=1.0):
    """Composite the texture, scaled to `radius`, rotated by `angle`, centred at (cx, cy)."""
    size = background.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xs - cx, ys - cy
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * dx + sin * dy) / radius  # object coordinates in [-1, 1]
    v = (-sin * dx + cos * dy) / radius
    # an asymmetric shape (a rectangle with a notch)
    inside = (np.abs(u) <= 1) & (np.abs(v) <= 0.6) & ~((u > 0.5) & (v > 0.1))
    n = texture.shape[0]
    ti = np.clip(((v + 1) / 2 * (n - 1)).round().astype(int), 0, n - 1)
    tj = np.clip(((u + 1) / 2 * (n - 1)).round().astype(int), 0, n - 1)
    frame = background.copy()
    frame[inside] = opacity * texture[ti[inside], tj[inside]] + (1 - opacity) * background[inside]
    return frame


def render_video(label: str, rng: np.random.Generator, num_frames: int = 16, size: int = 64) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of one video of class `label`."""
    if label not in CLASSES:
        raise ValueError(f"unknown synthetic class {label!r}; choose one of {CLASSES}")
    background = 0.25 * _texture(rng, size, noise=0.05) + 0.35  # muted, so the object stands out
    texture = _texture(rng, 32)
    t = np.arange(num_frames) - (num_frames - 1) / 2  # centred time: pairs are time reversals
    radius = np.full(num_frames, rng.uniform(size * 0.15, size * 0.22))
    angle = np.full(num_frames, rng.uniform(0, 2 * np.pi))
    opacity = np.full(num_frames, rng.uniform(*OPACITY))
    speed = rng.uniform(2.0, 3.5)  # pixels per frame
    travel = min(speed * (num_frames - 1) / 2, size / 2 - radius[0] - 3)  # the path stays inside the frame
    speed = travel / ((num_frames - 1) / 2)
    margin = radius[0] + 2
    cx = np.full(num_frames, rng.uniform(margin, size - margin))
    cy = np.full(num_frames, rng.uniform(margin, size - margin))
    if label in ("move_left", "move_right"):
        cx = np.full(num_frames, rng.uniform(margin + travel, size - margin - travel)) + speed * t * (1 if label == "move_right" else -1)
    elif label in ("move_up", "move_down"):
        cy = np.full(num_frames, rng.uniform(margin + travel, size - margin - travel)) + speed * t * (1 if label == "move_down" else -1)
    elif label in ("approach", "recede"):
        rate = rng.uniform(0.05, 0.08) * (1 if label == "approach" else -1)
        radius = radius * np.exp(rate * t)
    else:  # a linear ramp over the same range: each frame alone looks like any other video's
        opacity = np.linspace(*OPACITY, num_frames)[:: 1 if label == "fade_in" else -1]
    frames = [_render(background, texture, cx[i], cy[i], radius[i], angle[i], opacity[i]) for i in range(num_frames)]
    return (np.stack(frames) * 255).round().astype(np.uint8)


def write_mp4(path: str, frames: np.ndarray, fps: int = 8) -> None:
    """Encode (T, H, W, 3) uint8 frames as H.264 (yuv420p) with PyAV."""
    import av

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "g": "8", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def generate(out_dir: str, config: SynthConfig = SynthConfig(), progress: bool = True) -> dict[str, str]:
    """Write the dataset; returns the paths of the manifests and class list. Idempotent per seed."""
    from tqdm import tqdm

    rng = np.random.default_rng(config.seed)
    os.makedirs(out_dir, exist_ok=True)
    rows = {"train": [], "val": []}
    jobs = [(split, label, i) for split, count in (("train", config.train_per_class), ("val", config.val_per_class))
            for label in CLASSES for i in range(count)]
    seeds = rng.integers(0, 2**63 - 1, size=len(jobs))
    for (split, label, i), seed in tqdm(list(zip(jobs, seeds)), desc="synth videos", disable=not progress):
        rel = os.path.join("videos", split, label, f"{label}_{i:04d}.mp4")
        frames = render_video(label, np.random.default_rng(int(seed)), config.num_frames, config.size)
        write_mp4(os.path.join(out_dir, rel), frames, config.fps)
        rows[split].append({"path": rel, "label": label, "num_frames": config.num_frames})
    paths = {}
    for split, split_rows in rows.items():
        paths[split] = os.path.join(out_dir, f"{split}.csv")
        with open(paths[split], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["path", "label", "num_frames"])
            writer.writeheader()
            writer.writerows(split_rows)
    paths["classes"] = os.path.join(out_dir, "classes.txt")
    with open(paths["classes"], "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    return paths
