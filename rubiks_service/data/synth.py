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

Difficulty knobs (`SynthConfig`, `rubiks data synth --distractors/--noise/--motion`):

* `distractors`: that many extra objects of another shape (discs), each gliding in its own
  random direction at its own speed: motion that says nothing about the class, so a model has
  to find the one notched object and judge its motion alone;
* `noise`: Gaussian pixel noise (std, in [0, 1] units), fresh in every frame;
* `motion`: the fraction of the video during which the object moves (a window at a random
  place; the object rests before and after), so a clip sees fewer frames of the motion.

Whatever the knobs, every video of a pair's second class is the exact time reversal of one of
its first class (the same random draws, frames in reverse order), so no single frame tells a
class from its pair. The defaults are the main job's harder set; `SynthConfig.easy()` is the
earlier one (no distractors, no noise, motion over the whole video).

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
import json
import os
from dataclasses import asdict, dataclass

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
    distractors: int = 1  # discs moving at random: motion that does not tell the class
    noise: float = 0.05  # per-frame Gaussian pixel noise (std, 0..1 scale)
    motion: float = 0.75  # fraction of the frames over which the object moves (a window)

    def __post_init__(self):
        for name, low in (("train_per_class", 0), ("val_per_class", 0), ("num_frames", 2), ("size", 16), ("fps", 1),
                          ("seed", 0), ("distractors", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1], got {self.noise}")
        if not 0.0 < self.motion <= 1.0:
            raise ValueError(f"motion must be in (0, 1], got {self.motion}")

    @classmethod
    def easy(cls, **fields) -> "SynthConfig":
        """The earlier, easier set: one object, no noise, motion over the whole video."""
        return cls(**{"distractors": 0, "noise": 0.0, "motion": 1.0, **fields})

    def knobs(self) -> dict:
        return {"distractors": self.distractors, "noise": self.noise, "motion": self.motion}


def _texture(rng: np.random.Generator, n: int, noise: float = 0.15) -> np.ndarray:
    """A random colour texture (n, n, 3) in [0, 1]: coarse blocks plus fine noise."""
    coarse = rng.random((rng.integers(3, 7), rng.integers(3, 7), 3))
    ys = np.linspace(0, coarse.shape[0] - 1, n)
    xs = np.linspace(0, coarse.shape[1] - 1, n)
    rows = np.array([[np.interp(xs, np.arange(coarse.shape[1]), coarse[int(round(y)), :, ch]) for ch in range(3)] for y in ys])
    return np.clip(rows.transpose(0, 2, 1) + noise * rng.standard_normal((n, n, 3)), 0, 1)


def _render(background, texture, cx, cy, radius, angle, opacity=1.0, shape="notch"):
    """Composite the texture, scaled to `radius`, rotated by `angle`, centred at (cx, cy)."""
    size = background.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xs - cx, ys - cy
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * dx + sin * dy) / radius  # object coordinates in [-1, 1]
    v = (-sin * dx + cos * dy) / radius
    if shape == "notch":  # the object whose motion is the class: a rectangle with a notch
        inside = (np.abs(u) <= 1) & (np.abs(v) <= 0.6) & ~((u > 0.5) & (v > 0.1))
    else:  # distractors: discs
        inside = u * u + v * v <= 0.5
    n = texture.shape[0]
    ti = np.clip(((v + 1) / 2 * (n - 1)).round().astype(int), 0, n - 1)
    tj = np.clip(((u + 1) / 2 * (n - 1)).round().astype(int), 0, n - 1)
    frame = background.copy()
    frame[inside] = opacity * texture[ti[inside], tj[inside]] + (1 - opacity) * background[inside]
    return frame


PAIRS = {second: first for first, second in zip(CLASSES[::2], CLASSES[1::2])}  # second class -> first


def render_video(label: str, rng: np.random.Generator, num_frames: int = 16, size: int = 64, *,
                 distractors: int = 0, noise: float = 0.0, motion: float = 1.0) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of one video of class `label`.

    A pair's second class is rendered as its first class and played backwards: the same draws
    from `rng` give exact time reversals, whatever the knobs.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown synthetic class {label!r}; choose one of {CLASSES}")
    if label in PAIRS:
        return render_video(PAIRS[label], rng, num_frames, size, distractors=distractors, noise=noise,
                            motion=motion)[::-1].copy()
    background = 0.25 * _texture(rng, size, noise=0.05) + 0.35  # muted, so the object stands out
    texture = _texture(rng, 32)
    # the motion window: `moving` frames at a random place, at rest before and after
    moving = max(2, min(num_frames, int(round(motion * num_frames))))
    start = int(rng.integers(0, num_frames - moving + 1))
    t = np.clip(np.arange(num_frames) - start, 0, moving - 1) - (moving - 1) / 2  # centred on the window
    half = (moving - 1) / 2
    radius = np.full(num_frames, rng.uniform(size * 0.15, size * 0.22))
    angle = np.full(num_frames, rng.uniform(0, 2 * np.pi))
    opacity = np.full(num_frames, rng.uniform(*OPACITY))
    speed = rng.uniform(2.0, 3.5)  # pixels per frame
    travel = min(speed * half, size / 2 - radius[0] - 3)  # the path stays inside the frame
    speed = travel / half
    margin = radius[0] + 2
    cx = np.full(num_frames, rng.uniform(margin, size - margin))
    cy = np.full(num_frames, rng.uniform(margin, size - margin))
    if label == "move_left":
        cx = np.full(num_frames, rng.uniform(margin + travel, size - margin - travel)) - speed * t
    elif label == "move_up":
        cy = np.full(num_frames, rng.uniform(margin + travel, size - margin - travel)) - speed * t
    elif label == "approach":
        radius = radius * np.exp(rng.uniform(0.05, 0.08) * t)
    else:  # fade_in, a linear ramp over the same range: each frame alone looks like any other video's
        opacity = OPACITY[0] + (OPACITY[1] - OPACITY[0]) * (t + half) / (2 * half)
    # distractors: discs on straight paths in random directions (drawn behind the object)
    paths = []
    for _ in range(distractors):
        r = rng.uniform(size * 0.12, size * 0.2)
        heading = rng.uniform(0, 2 * np.pi)
        v = rng.uniform(1.0, 3.5)
        start_xy = rng.uniform(r, size - r, 2)
        steps = np.arange(num_frames) - (num_frames - 1) / 2
        xs = np.clip(start_xy[0] + v * np.cos(heading) * steps, -r / 2, size + r / 2)
        ys = np.clip(start_xy[1] + v * np.sin(heading) * steps, -r / 2, size + r / 2)
        paths.append((_texture(rng, 16), xs, ys, r, rng.uniform(0, 2 * np.pi), rng.uniform(*OPACITY)))
    frames = []
    for i in range(num_frames):
        frame = background
        for tex, xs, ys, r, ang, op in paths:
            frame = _render(frame, tex, xs[i], ys[i], r, ang, op, shape="disc")
        frames.append(_render(frame, texture, cx[i], cy[i], radius[i], angle[i], opacity[i]))
    video = np.stack(frames)
    if noise > 0:
        video = np.clip(video + noise * rng.standard_normal(video.shape), 0, 1)
    return (video * 255).round().astype(np.uint8)


def write_mp4(path: str, frames: np.ndarray, fps: int = 8) -> None:
    """Encode (T, H, W, 3) uint8 frames as H.264 (yuv420p) with PyAV."""
    import av

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # one encoder thread: x264's frame threads make its rate-control and lookahead decisions depend
        # on the thread count (the machine's cores), so the same frames gave other bytes on another
        # machine; single-threaded, the same arguments give byte-identical files anywhere
        stream.options = {"crf": "18", "g": "8", "preset": "veryfast", "threads": "1"}
        stream.thread_count = 1
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
        frames = render_video(label, np.random.default_rng(int(seed)), config.num_frames, config.size,
                              **config.knobs())
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
    paths["config"] = os.path.join(out_dir, "synth.json")
    with open(paths["config"], "w") as f:  # lets a script tell whether the data on disk is the one it wants
        json.dump(asdict(config), f, indent=2, sort_keys=True)
    return paths
