"""The Ray Data pipeline end to end on real mp4 files, with a local Ray instance."""
import shutil

import pytest
import torch

from rubiks_service.data.pipeline import ClipSpec, DataQualityError, DataQualityMonitor, build_dataset, clip_batches


def _collect(ds, monitor, batch_size=8):
    clips, labels = [], []
    for c, y in clip_batches(ds.iter_torch_batches(batch_size=batch_size), monitor):
        clips.append(c)
        labels.append(y)
    return torch.cat(clips), torch.cat(labels)


def test_train_pipeline_end_to_end(ray_local, synth_dir):
    spec = ClipSpec(segments=4, crop_size=32, flip_pairs={0: 1, 1: 0, 6: 7, 7: 6})
    ds, manifest = build_dataset(str(synth_dir / "train.csv"), spec, batch_size=4)
    monitor = DataQualityMonitor()
    clips, labels = _collect(ds, monitor)
    assert clips.shape == (24, 1, 4, 3, 32, 32) and clips.dtype == torch.float32
    counts = labels.bincount(minlength=8).tolist()
    # flips swap labels only within the declared pairs
    assert counts[0] + counts[1] == 6 and counts[6] + counts[7] == 6 and counts[2:6] == [3] * 4
    assert monitor.bad == 0 and monitor.seen == 24
    assert -3 < clips.mean() < 3  # normalised


def test_eval_two_clip_views(ray_local, synth_dir):
    ds, _ = build_dataset(str(synth_dir / "val.csv"), ClipSpec(segments=4, crop_size=32, mode="2clip"), batch_size=4)
    clips, labels = _collect(ds, DataQualityMonitor())
    assert clips.shape == (8, 6, 4, 3, 32, 32) and sorted(labels.tolist()) == list(range(8))


def test_bad_videos_are_skipped_and_counted(ray_local, synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    rows = (data / "train.csv").read_text().splitlines()
    victims = [rows[1].split(",")[0], rows[2].split(",")[0]]
    (data / victims[0]).write_bytes(b"")  # zero-length
    (data / victims[1]).unlink()  # missing
    (data / "train.csv").write_text("\n".join(rows + ["videos/ghost.mp4,not_a_class,12"]) + "\n")
    ds, manifest = build_dataset(str(data / "train.csv"), ClipSpec(segments=4, crop_size=32), batch_size=4)
    assert len(manifest.skipped) == 1  # the unknown label, reported up front
    monitor = DataQualityMonitor(min_valid_fraction=0.8)
    clips, labels = _collect(ds, monitor)
    assert monitor.seen == 25 and monitor.bad == 3 and len(labels) == 22
    strict = DataQualityMonitor(min_valid_fraction=0.95)
    with pytest.raises(DataQualityError, match=r"only 22/25 videos"):
        _collect(ds, strict)
