"""Decoding real mp4 files with decord, bad files, JPEG folders, and the synthetic dataset."""
import os

import numpy as np
import pytest
from PIL import Image

from rubiks_service.data.synth import CLASSES, render_video
from rubiks_service.data.video import VideoReadError, num_frames, read_clips, read_frames


def test_decode_known_content(mp4_file):
    path, frames = mp4_file
    assert num_frames(path) == 20
    out = read_frames(path, np.array([0, 10, 19]))
    assert out.shape == (3, 40, 56, 3)
    assert np.abs(out.astype(int) - frames[[0, 10, 19]].astype(int)).mean() < 6  # lossy codec, same picture


def test_resize_at_decode(mp4_file):
    out = read_frames(mp4_file[0], np.arange(4), short_side=20)
    assert out.shape == (4, 20, 28, 3)


def test_read_clips_opens_once_for_several_clips(mp4_file):
    a, b = read_clips(mp4_file[0], lambda n: [np.arange(0, n, 5), np.arange(1, n, 5)])
    assert a.shape == b.shape == (4, 40, 56, 3)


@pytest.mark.parametrize("damage", ["missing", "empty", "garbage", "truncated"])
def test_bad_files_raise_video_read_error(tmp_path, mp4_file, damage):
    path = str(tmp_path / "bad.mp4")
    data = open(mp4_file[0], "rb").read()
    if damage == "empty":
        open(path, "wb").close()
    elif damage == "garbage":
        open(path, "wb").write(os.urandom(2048))
    elif damage == "truncated":
        open(path, "wb").write(data[: len(data) // 3])
    with pytest.raises(VideoReadError) as info:
        read_frames(path, np.arange(8))
    assert info.value.path == path


def test_jpeg_folder(tmp_path):
    for i in range(1, 6):  # 1-indexed frames, as in the TSM/SSv1 layout
        Image.fromarray(np.full((12, 16, 3), i * 40, np.uint8)).save(tmp_path / f"{i:05d}.jpg")
    assert num_frames(str(tmp_path)) == 5
    out = read_frames(str(tmp_path), np.array([0, 4, 9]))
    assert out.shape == (3, 12, 16, 3) and abs(int(out[1].mean()) - 200) < 3 and abs(int(out[2].mean()) - 200) < 3


def test_synth_is_deterministic_and_pairs_are_time_reversals():
    a = render_video("move_left", np.random.default_rng(5))
    assert np.array_equal(a, render_video("move_left", np.random.default_rng(5)))
    # a class and its pair show the same frames in opposite order: no single frame tells them apart
    for first, second in zip(CLASSES[::2], CLASSES[1::2]):
        x = render_video(first, np.random.default_rng(9))
        y = render_video(second, np.random.default_rng(9))
        assert np.array_equal(x[::-1], y), (first, second)
        assert not np.array_equal(x, y)


def test_synth_files(synth_dir):
    lines = (synth_dir / "train.csv").read_text().splitlines()
    assert lines[0] == "path,label,num_frames" and len(lines) == 1 + 3 * len(CLASSES)
    assert (synth_dir / "classes.txt").read_text().split() == list(CLASSES)
    first = lines[1].split(",")[0]
    assert num_frames(str(synth_dir / first)) == 12
