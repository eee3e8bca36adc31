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


KNOBS = {"distractors": 2, "noise": 0.08, "motion": 0.5}


def test_harder_knobs_keep_pairs_exact_time_reversals():
    for first, second in zip(CLASSES[::2], CLASSES[1::2]):
        x = render_video(first, np.random.default_rng(4), **KNOBS)
        y = render_video(second, np.random.default_rng(4), **KNOBS)
        assert np.array_equal(x[::-1], y), (first, second)
    easy = render_video("move_left", np.random.default_rng(4))
    hard = render_video("move_left", np.random.default_rng(4), **KNOBS)
    assert easy.shape == hard.shape and not np.array_equal(easy, hard)


def test_short_motion_rests_outside_its_window():
    """motion=0.25 of 16 frames: the object moves in 4 frames and rests in the other 12 (no noise,
    no distractors: resting frames are identical)."""
    for label in ("move_left", "approach", "fade_in"):
        v = render_video(label, np.random.default_rng(7), motion=0.25).astype(int)
        changes = [int(np.abs(v[i + 1] - v[i]).sum() > 0) for i in range(15)]
        assert sum(changes) == 3, (label, changes)
        full = render_video(label, np.random.default_rng(7)).astype(int)
        assert all(np.abs(full[i + 1] - full[i]).sum() > 0 for i in range(15))


def test_distractors_move_and_noise_is_fresh_each_frame():
    still = render_video("fade_in", np.random.default_rng(2), motion=0.125, distractors=0)
    busy = render_video("fade_in", np.random.default_rng(2), motion=0.125, distractors=3)
    # outside the fade window the object rests: frames change only where discs move
    assert np.array_equal(still[0], still[1]) and not np.array_equal(busy[0], busy[1])
    noisy = render_video("fade_in", np.random.default_rng(2), motion=0.125, noise=0.1).astype(int)
    assert 10 < np.abs(noisy[1] - noisy[0]).mean() < 40  # fresh noise: resting frames differ everywhere


@pytest.mark.parametrize("field, value", [("noise", 1.5), ("motion", 0.0), ("distractors", -1), ("num_frames", 1)])
def test_bad_knobs(field, value):
    from rubiks_service.data.synth import SynthConfig

    with pytest.raises(ValueError, match=field):
        SynthConfig(**{field: value})


def test_cli_synth_knobs_and_a_bad_one(tmp_path, capsys):
    import json

    from rubiks_service.cli import main

    assert main(["data", "synth", str(tmp_path / "d"), "--train-per-class", "1", "--val-per-class", "1",
                 "--frames", "8", "--size", "32", "--distractors", "1", "--noise", "0.05", "--motion", "0.5",
                 "--json"]) == 0
    paths = json.loads(capsys.readouterr().out)
    written = json.load(open(paths["config"]))
    assert (written["distractors"], written["noise"], written["motion"], written["num_frames"]) == (1, 0.05, 0.5, 8)
    assert main(["data", "synth", str(tmp_path / "e"), "--motion", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "motion" in err[0]


def _synth_in_a_new_process(out, threads):
    """`rubiks data synth` in a fresh interpreter, with `threads` cores' worth of OpenMP/x264 hints."""
    import subprocess
    import sys

    code = ("from rubiks_service.data.synth import SynthConfig, generate; "
            f"generate({str(out)!r}, SynthConfig(train_per_class=2, val_per_class=1, num_frames=12), progress=False)")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    return {os.path.relpath(os.path.join(d, f), out): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(out) for f in files}


def test_synth_bytes_are_identical_across_processes(tmp_path):
    """The same arguments give byte-identical files in two separate processes (the encoder's choices
    do not depend on the process, its load or the machine's cores), so every machine trains on the
    same dataset."""
    a = _synth_in_a_new_process(tmp_path / "a", threads=1)
    b = _synth_in_a_new_process(tmp_path / "b", threads=2)
    assert len([k for k in a if k.endswith(".mp4")]) == 24
    assert a.keys() == b.keys()
    different = sorted(k for k in a if a[k] != b[k])
    assert different == []
