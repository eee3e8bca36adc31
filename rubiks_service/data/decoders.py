"""Decoders: video files -> clips (or cached frames), as Ray Data `map_batches` stages and as plain
functions for one file.

Their input rows are the manifest's (`ray_dataset.manifest_rows`):

    file   the video to read (absolute)
    path   the video as the manifest lists it: reported, and the frame cache's per-video seed
    label  class index; -1 marks a row the manifest could not use (already reported by it)

A video that cannot be read (missing, empty, truncated, corrupt) does not stop the pipeline: its
row comes out with valid=False and a warning names the path; the consumer drops and counts it
(`quality.clip_batches`).
"""
from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

import numpy as np
import torch

from .clip_spec import ClipSpec, clip_indices, empty_views, make_views
from .video import VideoReadError, read_clips

log = logging.getLogger(__name__)

UNUSABLE_LABEL = -1  # a manifest row skipped by `read_manifest` (its label or path)


def read_views(path: str, spec: ClipSpec, rng: np.random.Generator | None = None) -> np.ndarray:
    """One video file -> its (V, T, S, S, 3) uint8 views under `spec`, the same sampling and crops as
    the decoders; raises `VideoReadError` (for callers that report per file, like `rubiks predict`)."""
    rng = rng or np.random.default_rng()
    clips = read_clips(path, lambda n: clip_indices(n, spec.segments, spec.mode, rng), spec.decode_short_side)
    return make_views(clips, 0, spec, rng)[0]


def _read_or_flag(file: str, label: int, choose: Callable[[int], list[np.ndarray]],
                  short_side: int) -> list[np.ndarray] | None:
    """The chosen clips of one row's video, or None (with a warning) when it cannot be used."""
    if label == UNUSABLE_LABEL:
        return None
    try:
        return read_clips(file, choose, short_side)
    except VideoReadError as exc:
        log.warning("skipping unreadable video %s", exc)
        return None


def clip_rows(out: list[tuple[np.ndarray, int, bool]]) -> dict[str, np.ndarray]:
    """(views, label, valid) per video -> the {clip, label, valid} columns of a batch."""
    return {
        "clip": np.stack([o[0] for o in out]),
        "label": np.array([o[1] for o in out], dtype=np.int64),
        "valid": np.array([o[2] for o in out], dtype=bool),
    }


class ClipDecoder:
    """`map_batches` stage: manifest rows -> {clip, label, valid}; bad videos flagged, not raised."""

    def __init__(self, spec: ClipSpec, seed: int | None = None) -> None:
        torch.set_num_threads(1)  # one decoder actor per CPU: no oversubscription from resize ops
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def _choose(self, num_frames: int) -> list[np.ndarray]:
        return clip_indices(num_frames, self.spec.segments, self.spec.mode, self.rng)

    def decode(self, file: str, label: int) -> tuple[np.ndarray, int, bool]:
        clips = _read_or_flag(file, label, self._choose, self.spec.decode_short_side)
        if clips is None:
            return empty_views(self.spec), label, False
        views, label = make_views(clips, label, self.spec, self.rng)
        return views, label, True

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return clip_rows([self.decode(str(f), int(label)) for f, label in zip(batch["file"], batch["label"])])


class FrameDecoder:
    """`map_batches` stage of the frame cache: manifest rows -> {frames, label, path, valid}, every
    frame of each video decoded once at `short_side` (ragged across videos of other sizes)."""

    def __init__(self, short_side: int) -> None:
        torch.set_num_threads(1)
        self.short_side = short_side

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = np.empty(len(batch["file"]), dtype=object)  # filled one by one: shapes may differ
        valid = []
        for i, (file, label) in enumerate(zip(batch["file"], batch["label"])):
            clips = _read_or_flag(str(file), int(label), lambda n: [np.arange(n)], self.short_side)
            frames[i] = clips[0] if clips is not None else np.zeros((1, 1, 1, 3), np.uint8)
            valid.append(clips is not None)
        return {"frames": frames, "label": np.asarray(batch["label"], dtype=np.int64),
                "path": np.array([str(p) for p in batch["path"]]), "valid": np.array(valid, dtype=bool)}


class ClipSampler:
    """Cached frames -> {clip, label, valid} torch tensors: TSN sampling and augmentation of
    already-decoded videos, run by the consumer each epoch. Each video's randomness comes from
    (seed, epoch, its listed path), so a run reproduces exactly whatever the batching or threading."""

    def __init__(self, spec: ClipSpec, seed: int = 0, epoch: int = 0) -> None:
        self.spec, self.seed, self.epoch = spec, seed, epoch

    def sample(self, frames: np.ndarray, label: int, path: str) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(path.encode())])
        chosen = clip_indices(len(frames), self.spec.segments, self.spec.mode, rng)
        return make_views([frames[idx] for idx in chosen], label, self.spec, rng)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = []
        for frames, label, path, ok in zip(batch["frames"], batch["label"], batch["path"], batch["valid"]):
            out.append((*self.sample(frames, int(label), str(path)), True) if ok
                       else (empty_views(self.spec), int(label), False))
        return {key: torch.from_numpy(value) for key, value in clip_rows(out).items()}
