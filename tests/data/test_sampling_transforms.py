"""TSN sampling indices and clip transforms."""
import numpy as np
import pytest
import torch

from rubiks_service.data import sampling, transforms
from rubiks_service.data.clip_spec import ClipMode, ClipSpec, clip_indices, make_views


def test_train_indices_one_per_segment():
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = sampling.train_indices(80, 8, rng)
        assert len(idx) == 8 and all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(idx))
    draws = {tuple(sampling.train_indices(80, 8, rng)) for _ in range(20)}
    assert len(draws) > 10  # random


def test_test_indices_centres_and_starts():
    assert sampling.test_indices(80, 8).tolist() == [5, 15, 25, 35, 45, 55, 65, 75]
    assert sampling.test_indices(80, 8, at="start").tolist() == [0, 10, 20, 30, 40, 50, 60, 70]
    assert len(clip_indices(80, 8, ClipMode.TWO_CLIP)) == 2


def test_short_video_repeats_frames():
    rng = np.random.default_rng(0)
    for idx in (sampling.train_indices(3, 8, rng), sampling.test_indices(3, 8)):
        assert len(idx) == 8 and set(idx.tolist()) <= {0, 1, 2} and sorted(idx.tolist()) == idx.tolist()
    with pytest.raises(ValueError, match="no frames"):
        sampling.test_indices(0, 8)


def test_multi_scale_crop_and_flip_swap():
    clip = np.random.default_rng(0).integers(0, 255, (4, 60, 80, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    out = transforms.multi_scale_crop(clip, 32, rng)
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
    swaps = transforms.SSV2_FLIP_PAIRS
    labels = {transforms.horizontal_flip(clip, 86, np.random.default_rng(s), swaps)[1] for s in range(20)}
    assert labels == {86, 87}
    for s in range(20):
        flipped, label = transforms.horizontal_flip(clip, 86, np.random.default_rng(s), swaps)
        assert (label == 87) == np.array_equal(flipped, clip[:, :, ::-1])
        assert transforms.horizontal_flip(clip, 5, np.random.default_rng(s), swaps)[1] == 5


def test_eval_views():
    clips = [np.zeros((8, 48, 64, 3), np.uint8)] * 2
    one, _ = make_views(clips[:1], 3, ClipSpec(crop_size=32, mode="1clip"), np.random.default_rng(0))
    two, _ = make_views(clips, 3, ClipSpec(crop_size=32, mode="2clip"), np.random.default_rng(0))
    assert one.shape == (1, 8, 32, 32, 3) and two.shape == (6, 8, 32, 32, 3)
    assert transforms.eval_short_side(224) == 256 and transforms.eval_short_side(112) == 128


def test_three_crops_cover_the_long_side():
    clip = np.arange(10 * 30, dtype=np.uint8).reshape(1, 10, 30, 1).repeat(3, axis=3)
    left, mid, right = transforms.three_crops(clip, 10)
    assert left[0, 0, 0, 0] == clip[0, 0, 0, 0] and right[0, 0, -1, 0] == clip[0, 0, -1, 0]
    assert mid[0, 0, 0, 0] == clip[0, 0, 10, 0]


def test_normalize():
    clips = torch.full((2, 4, 5, 5, 3), 255, dtype=torch.uint8)
    out = transforms.normalize(clips)
    assert out.shape == (2, 4, 3, 5, 5)
    torch.testing.assert_close(out[0, 0, :, 0, 0], (1 - torch.tensor(transforms.IMAGENET_MEAN)) / torch.tensor(transforms.IMAGENET_STD))
