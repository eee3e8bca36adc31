"""A manifest's Ray Dataset end to end on real mp4 files (decoded per epoch and the frame cache), with a
local Ray instance; the consumer side's quality check."""
import shutil

import pytest
import torch

from rubiks_service.data import transforms
from rubiks_service.data.clip_spec import ClipSpec
from rubiks_service.data.decoders import ClipSampler
from rubiks_service.data.quality import DataQualityError, DataQualityMonitor, clip_batches
from rubiks_service.data.ray_dataset import build_dataset


def _collect(ds, monitor, batch_size=8):
    clips, labels = [], []
    for c, y in clip_batches(ds.iter_torch_batches(batch_size=batch_size), monitor):
        clips.append(c)
        labels.append(y)
    return torch.cat(clips), torch.cat(labels)


def test_train_pipeline_end_to_end(ray_local, synth_dir):
    spec = ClipSpec(segments=4, crop_size=32, flip_pairs={0: 1, 1: 0})
    ds, manifest = build_dataset(str(synth_dir / "train.csv"), spec, batch_size=4)
    monitor = DataQualityMonitor()
    clips, labels = _collect(ds, monitor)
    assert clips.shape == (24, 1, 4, 3, 32, 32) and clips.dtype == torch.float32
    counts = labels.bincount(minlength=8).tolist()
    # flips swap labels only within the declared pairs
    assert counts[0] + counts[1] == 6 and counts[2:] == [3] * 6
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


def test_per_epoch_decoding_draws_new_clips_each_epoch(ray_local, synth_dir):
    """Ray Data re-creates the decoders every epoch of a split iterator (as in Train): a seeded
    training run's epochs must still differ (a seed passed to them would replay the same crops)."""
    from rubiks_service.train.clip_source import clip_source
    from rubiks_service.train.config import TrainConfig

    cfg = TrainConfig.model_validate({"seed": 3, "data": {
        "train_manifest": str(synth_dir / "train.csv"), "val_manifest": str(synth_dir / "val.csv"),
        "segments": 4, "crop_size": 32, "batch_size": 4}})
    shard = clip_source(cfg).datasets()[0]["train"].streaming_split(1, equal=True)[0]
    epochs = [{clip.tobytes() for b in shard.iter_batches(batch_size=4, batch_format="numpy") for clip in b["clip"]}
              for _ in range(2)]
    assert len(epochs[0]) == len(epochs[1]) == 24
    assert len(epochs[0] & epochs[1]) <= 4  # almost every clip is new


def _sampled(ds, spec, *, epoch=0, seed=0):
    """Clips of a frame-cache dataset in its stored order, sampled as a training worker would."""
    sampler = ClipSampler(spec, seed=seed, epoch=epoch)
    batches = ({**sampler(b), "path": b["path"]} for b in ds.iter_batches(batch_size=4, batch_format="numpy"))
    rows = [(path, clip, int(label), bool(ok)) for b in batches
            for path, clip, label, ok in zip(b["path"], b["clip"], b["label"], b["valid"])]
    return {path: (clip, label, ok) for path, clip, label, ok in rows}


def test_frame_cache_serves_the_same_eval_views_as_per_epoch_decoding(ray_local, synth_dir):
    for mode in ("1clip", "2clip"):
        spec = ClipSpec(segments=4, crop_size=32, mode=mode)
        cached, _ = build_dataset(str(synth_dir / "val.csv"), spec, batch_size=4, cache_frames=True)
        assert {"frames", "label", "path", "valid"} <= set(cached.schema().names)
        from_cache = _sampled(cached, spec)
        decoded, _ = build_dataset(str(synth_dir / "val.csv"), spec, batch_size=4)
        clips, labels = _collect(decoded, DataQualityMonitor())
        by_label = {label: clip for clip, label, _ in from_cache.values()}
        assert sorted(by_label) == sorted(labels.tolist()) == list(range(8))
        for clip, label in zip(clips, labels.tolist()):  # identical pixels, normalised the same way
            assert torch.equal(transforms.normalize(by_label[label][None])[0], clip)


def test_frame_cache_epochs_differ_and_reproduce(ray_local, synth_dir):
    spec = ClipSpec(segments=4, crop_size=32, flip_pairs={0: 1, 1: 0})
    ds, _ = build_dataset(str(synth_dir / "train.csv"), spec, batch_size=4, cache_frames=True, decode_cpus=0.5)
    first, again, second = _sampled(ds, spec, epoch=0), _sampled(ds, spec, epoch=0), _sampled(ds, spec, epoch=1)
    assert len(first) == 24 and first.keys() == second.keys()
    assert all(torch.equal(first[p][0], again[p][0]) for p in first)  # same seed and epoch: same clips
    changed = sum(not torch.equal(first[p][0], second[p][0]) for p in first)
    assert changed >= 20  # a new epoch draws new frames, crops and flips
    assert first[next(iter(first))][0].shape == (1, 4, 32, 32, 3)
    counts = torch.tensor([label for _, label, _ in second.values()]).bincount(minlength=8).tolist()
    assert counts[0] + counts[1] == 6 and counts[2:] == [3] * 6  # flips swap only declared pairs


def test_frame_cache_flags_bad_videos(ray_local, synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    rows = (data / "val.csv").read_text().splitlines()
    victim = rows[1].split(",")[0]
    (data / victim).write_bytes(b"\x00" * 500)  # not a video
    spec = ClipSpec(segments=4, crop_size=32, mode="1clip")
    ds, _ = build_dataset(str(data / "val.csv"), spec, batch_size=4, cache_frames=True)
    sampled = _sampled(ds, spec)
    assert [p for p, (_, _, ok) in sampled.items() if not ok] == [victim]
    monitor = DataQualityMonitor(min_valid_fraction=0.5)
    sampler = ClipSampler(spec)
    batches = (sampler(b) for b in ds.iter_batches(batch_size=4, batch_format="numpy"))
    kept = sum(len(labels) for _, labels in clip_batches(batches, monitor))
    assert (kept, monitor.bad, monitor.seen) == (7, 1, 8)
