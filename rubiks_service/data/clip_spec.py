"""How one video becomes the model's input: the clip mode, the clip spec, and the one place
that says what each mode samples and how it crops.

    TRAIN     one clip, a random frame per TSN segment; multi-scale crop, flip (label swap)
    ONE_CLIP  the segment centres; short side resized, centre crop            -> 1 view
    TWO_CLIP  the segment centres and starts; short side resized, 3 crops each -> 6 views

Clips come out as uint8 (V, T, S, S, 3) arrays, V views per video.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import sampling, transforms


class ClipMode(enum.StrEnum):
    """Training augmentation, or an evaluation protocol. Equal to its string ("1clip" == ClipMode.ONE_CLIP),
    so configs and metric names keep their plain spellings."""

    TRAIN = "train"
    ONE_CLIP = "1clip"
    TWO_CLIP = "2clip"

    @property
    def views(self) -> int:
        return 6 if self is ClipMode.TWO_CLIP else 1


def clip_mode(value: str) -> ClipMode:
    try:
        return ClipMode(value)
    except ValueError:
        raise ValueError(f"unknown clip mode {value!r}; choose one of {tuple(m.value for m in ClipMode)}") from None


@dataclass(frozen=True)
class ClipSpec:
    """How one video becomes the model's input."""

    segments: int = 8  # frames per clip (TSN segments)
    crop_size: int = 112
    mode: ClipMode = ClipMode.TRAIN  # a string is accepted and converted
    short_side: int | None = None  # decode-time resize; default 256 * crop / 224
    flip: bool = True  # train only
    flip_pairs: Mapping[int, int] = field(default_factory=dict)  # classes that swap under a flip

    def __post_init__(self):
        object.__setattr__(self, "mode", clip_mode(self.mode))
        if self.segments < 1 or self.crop_size < 8:
            raise ValueError(f"bad clip spec: segments={self.segments}, crop_size={self.crop_size}")

    @property
    def views(self) -> int:
        return self.mode.views

    @property
    def decode_short_side(self) -> int:
        return self.short_side or transforms.eval_short_side(self.crop_size)


def clip_indices(num_frames: int, segments: int, mode: ClipMode | str,
                 rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """The clips of one video: TRAIN -> 1 random, ONE_CLIP -> centres, TWO_CLIP -> centres and starts."""
    mode = clip_mode(mode)
    if mode is ClipMode.TRAIN:
        return [sampling.train_indices(num_frames, segments, rng or np.random.default_rng())]
    centres = sampling.test_indices(num_frames, segments)
    if mode is ClipMode.ONE_CLIP:
        return [centres]
    return [centres, sampling.test_indices(num_frames, segments, at="start")]


def make_views(clips: Sequence[np.ndarray], label: int, spec: ClipSpec, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Sampled clips of one video -> (V, T, S, S, 3) uint8 views and the (possibly swapped) label."""
    if spec.mode is ClipMode.TRAIN:
        clip = transforms.multi_scale_crop(clips[0], spec.crop_size, rng)
        if spec.flip:
            clip, label = transforms.horizontal_flip(clip, label, rng, spec.flip_pairs)
        return np.ascontiguousarray(clip)[None], label
    short = [transforms.resize_short_side(c, spec.decode_short_side) for c in clips]
    if spec.mode is ClipMode.ONE_CLIP:
        return np.ascontiguousarray(transforms.center_crop(short[0], spec.crop_size))[None], label
    views = [v for c in short for v in transforms.three_crops(c, spec.crop_size)]
    return np.ascontiguousarray(np.stack(views)), label


def empty_views(spec: ClipSpec) -> np.ndarray:
    """The placeholder views of a video that could not be used (its row is flagged invalid)."""
    return np.zeros((spec.views, spec.segments, spec.crop_size, spec.crop_size, 3), np.uint8)
