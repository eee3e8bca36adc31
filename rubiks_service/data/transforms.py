"""Clip transforms: pure functions on (T, H, W, 3) uint8 arrays (the same crop for every
frame of a clip), plus normalisation on torch tensors in the training worker.

Train: TSN multi-scale crop (scales of the short side, fixed corner/centre
offsets) to the crop size, horizontal flip (with a label swap for datasets
whose labels depend on left/right). Eval: resize the short side to
256 * crop / 224 and take the centre crop (1-clip) or three crops across the
long side (2-clip protocol: 2 clips x 3 crops).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTI_SCALES = (1.0, 0.875, 0.75, 0.66)

# Something-Something v2 classes that swap under a horizontal flip
# ("Pushing something from left to right" <-> "... right to left", etc.)
SSV2_FLIP_PAIRS = {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}


def resize(clip: np.ndarray, height: int, width: int) -> np.ndarray:
    if clip.shape[1:3] == (height, width):
        return clip
    t = torch.from_numpy(clip).permute(0, 3, 1, 2).float()
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def resize_short_side(clip: np.ndarray, size: int) -> np.ndarray:
    h, w = clip.shape[1:3]
    scale = size / min(h, w)
    return resize(clip, max(size, round(h * scale)), max(size, round(w * scale)))


def crop(clip: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    return clip[:, top : top + height, left : left + width]


def multi_scale_crop(
    clip: np.ndarray, size: int, rng: np.random.Generator, scales=MULTI_SCALES, max_distort: int = 1
) -> np.ndarray:
    """TSN's multi-scale crop: crop sides from `scales` x short side (aspect distortion up to
    `max_distort` scale steps), at one of 5 fixed offsets (4 corners, centre), resized to size^2."""
    h, w = clip.shape[1:3]
    base = min(h, w)
    sides = [int(base * s) for s in scales]
    pairs = [(ch, cw) for i, ch in enumerate(sides) for j, cw in enumerate(sides) if abs(i - j) <= max_distort]
    ch, cw = pairs[rng.integers(len(pairs))]
    dy, dx = (h - ch) // 2, (w - cw) // 2
    offsets = [(0, 0), (0, 2 * dx), (2 * dy, 0), (2 * dy, 2 * dx), (dy, dx)]
    top, left = offsets[rng.integers(len(offsets))]
    return resize(crop(clip, top, left, ch, cw), size, size)


def horizontal_flip(
    clip: np.ndarray, label: int, rng: np.random.Generator, swap: Mapping[int, int] | None = None
) -> tuple[np.ndarray, int]:
    """Flip with probability 1/2; a flipped clip of a class in `swap` takes its pair's label."""
    if rng.random() >= 0.5:
        return clip, label
    return clip[:, :, ::-1], (swap or {}).get(label, label)


def center_crop(clip: np.ndarray, size: int) -> np.ndarray:
    h, w = clip.shape[1:3]
    return crop(clip, (h - size) // 2, (w - size) // 2, size, size)


def three_crops(clip: np.ndarray, size: int) -> list[np.ndarray]:
    """Three size^2 crops spread across the long side (start, centre, end)."""
    h, w = clip.shape[1:3]
    if w >= h:
        positions = [(((h - size) // 2), left) for left in (0, (w - size) // 2, w - size)]
    else:
        positions = [(top, (w - size) // 2) for top in (0, (h - size) // 2, h - size)]
    return [crop(clip, top, left, size, size) for top, left in positions]


def eval_short_side(crop_size: int) -> int:
    """The short side the eval protocols resize to: 256 for 224 crops, scaled alike."""
    return round(256 * crop_size / 224)


def normalize(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) normalised with ImageNet mean/std."""
    x = clips.permute(*range(clips.dim() - 3), -1, -3, -2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return (x - mean) / std
