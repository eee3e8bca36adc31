"""TSN frame sampling (Wang et al.): T segments, one frame per segment.

train: a random frame in each segment; test: the segment centres; the 2-clip
protocol adds a second clip at the segment starts. A video shorter than T
frames repeats frames (indices spread evenly over what is there). Which of these a
clip mode uses is `clip_spec.clip_indices`.
"""
from __future__ import annotations

import numpy as np


def _check(num_frames: int, segments: int) -> None:
    if num_frames < 1:
        raise ValueError(f"video has no frames (num_frames={num_frames})")
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")


def train_indices(num_frames: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    _check(num_frames, segments)
    if num_frames < segments:
        return np.floor(np.arange(segments) * num_frames / segments).astype(np.int64)
    edges = np.linspace(0, num_frames, segments + 1)
    starts = np.ceil(edges[:-1]).astype(np.int64)
    ends = np.maximum(np.ceil(edges[1:]).astype(np.int64), starts + 1)  # exclusive
    return starts + (rng.random(segments) * (ends - starts)).astype(np.int64)


def test_indices(num_frames: int, segments: int, *, at: str = "centre") -> np.ndarray:
    """Deterministic indices: segment centres (`at="centre"`) or starts (`at="start"`)."""
    _check(num_frames, segments)
    length = num_frames / segments
    offset = {"centre": length / 2, "start": 0.0}[at]
    return np.minimum(np.floor(np.arange(segments) * length + offset), num_frames - 1).astype(np.int64)
