"""The train and val datasets of a run, and how a worker iterates its shard each epoch.

Without the frame cache the datasets yield finished clips (decoded per epoch by Ray Data's
decoder actors). With `data.cache_frames` they hold every video's decoded frames, built once
on the driver; each epoch a worker shuffles its shard in its local buffer and samples and
augments clips in the iterator's collate step, seeded by (seed, epoch), so epochs differ and
runs reproduce.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

from rubiks_service.data.pipeline import ClipSampler, ClipSpec, build_dataset

from .config import TrainConfig


def clip_spec(cfg: TrainConfig, mode: str) -> ClipSpec:
    d = cfg.data
    if mode == "train":
        return ClipSpec(segments=d.segments, crop_size=d.crop_size, mode="train", flip=d.flip, flip_pairs=d.flip_pairs)
    return ClipSpec(segments=d.segments, crop_size=d.crop_size, mode=mode)


def datasets_for(cfg: TrainConfig):
    """{"train", "val"} Ray Datasets and the class list (from the train manifest)."""
    d = cfg.data
    common = {"data_root": d.data_root, "batch_size": d.batch_size, "decode_cpus": d.decode_cpus,
              "cache_frames": d.cache_frames}
    start = time.perf_counter()
    if d.cache_frames:
        print(f"[data] decoding {d.train_manifest} and {d.val_manifest} once into the frame cache", flush=True)
    train, manifest = build_dataset(d.train_manifest, clip_spec(cfg, "train"), **common)
    val, _ = build_dataset(d.val_manifest, clip_spec(cfg, "1clip"), classes=manifest.classes, **common)
    if d.cache_frames:
        print(f"[data] frame cache ready: {train.count()} train + {val.count()} val videos "
              f"in {time.perf_counter() - start:.1f} s", flush=True)
    return {"train": train, "val": val}, manifest.classes


def epoch_batches(shard, cfg: TrainConfig, mode: str, epoch: int) -> Iterator[dict]:
    """One epoch of {clip, label, valid} torch batches from a worker's dataset shard."""
    if not cfg.data.cache_frames:
        return shard.iter_torch_batches(batch_size=cfg.data.batch_size)
    from ray.data.collate_fn import NumpyBatchCollateFn

    sampler = ClipSampler(clip_spec(cfg, mode), seed=cfg.seed, epoch=epoch)

    class SampledClips(NumpyBatchCollateFn):  # Ray Data calls it in the worker's prefetch thread
        def __call__(self, batch):
            return sampler(batch)

    shuffle = {"local_shuffle_buffer_size": cfg.data.shuffle_buffer, "local_shuffle_seed": cfg.seed * 1009 + epoch}
    return shard.iter_torch_batches(batch_size=cfg.data.batch_size, collate_fn=SampledClips(),
                                    **(shuffle if mode == "train" else {}))
