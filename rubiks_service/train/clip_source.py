"""Where a run's clips come from: decoded by Ray Data every epoch, or sampled from the frame cache or
from frame shards.

Both are a `ClipSource`. On the driver it builds the run's {"train", "val"} Ray Datasets; in a
Train worker it turns a dataset shard into one epoch of {clip, label, valid} batches for a clip
mode; and it says which evaluation protocols the workers can run on their val shard at the end of
the run (the others are decoded afresh on the driver, `trainer.evaluate`). `clip_source(cfg)` picks
one from `data.cache_frames` and `data.train_frames`; nothing else asks which one a run has.

    DecodedClips   each epoch Ray Data's decoder actors decode, sample and augment the clips: the
                   train dataset serves training, the val dataset the 1-clip check, nothing else.
    CachedFrames   every video's frames decoded once on the driver and materialized; each epoch a
                   worker shuffles its shard in its local buffer and samples and augments clips in
                   the iterator's collate step, seeded by (seed, epoch): epochs differ, runs
                   reproduce, and any protocol can be served from the same frames.
    ShardedFrames  the same sampling from frame shards that `rubiks data prepare-frames` wrote once for
                   every run (`data.train_frames`, `data.val_frames`: folders, on a cluster in a
                   bucket), read file by file: no decoding, and the dataset need not fit in memory.

With `data.hold_in_worker` the last two keep each worker's shard in the worker after its first pass and
sample later epochs from there, which for small datasets costs a fraction of a Ray Data pass per epoch;
ShardedFrames' workers then read their rows from the folders straight away, without Ray Data.
"""
from __future__ import annotations

import abc
import time
from collections.abc import Iterator

import numpy as np

from rubiks_service.data import frame_shards
from rubiks_service.data.clip_spec import ClipMode, ClipSpec
from rubiks_service.data.decoders import ClipSampler
from rubiks_service.data.ray_dataset import build_dataset

from .config import TrainConfig
from .metric_names import VAL_PROTOCOL


def clip_spec(cfg: TrainConfig, mode: ClipMode | str) -> ClipSpec:
    """The run's clips in `mode`: flips (and their label swaps) in training only."""
    d = cfg.data
    if mode == ClipMode.TRAIN:
        return ClipSpec(segments=d.segments, crop_size=d.crop_size, mode=mode, flip=d.flip, flip_pairs=d.flip_pairs)
    return ClipSpec(segments=d.segments, crop_size=d.crop_size, mode=mode)


class ClipSource(abc.ABC):
    """The run's datasets (driver) and each epoch's batches of a shard (worker)."""

    cache_frames = False

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def dataset(self, manifest: str, mode: ClipMode | str, classes=None):
        """(Ray Dataset, Manifest) of one manifest for clips in `mode`."""
        d = self.cfg.data
        return build_dataset(manifest, clip_spec(self.cfg, mode), data_root=d.data_root, classes=classes,
                             batch_size=d.batch_size, decode_cpus=d.decode_cpus, cache_frames=self.cache_frames)

    @property
    def needs_datasets(self) -> bool:
        """Whether the workers take their clips from Ray Dataset shards (else they read them themselves)."""
        return True

    def datasets(self) -> tuple[dict, list[str]]:
        """{"train", "val"} Ray Datasets and the class list (from the train manifest)."""
        d = self.cfg.data
        train, manifest = self.dataset(d.train_manifest, ClipMode.TRAIN)
        val, _ = self.dataset(d.val_manifest, VAL_PROTOCOL, classes=manifest.classes)
        return {"train": train, "val": val}, manifest.classes

    @abc.abstractmethod
    def batches(self, shard, mode: ClipMode, epoch: int) -> Iterator[dict]:
        """One epoch of {clip, label, valid} torch batches from a worker's dataset shard."""

    @abc.abstractmethod
    def worker_protocols(self) -> list[ClipMode]:
        """The end-of-run protocols the workers evaluate on their val shard."""


class DecodedClips(ClipSource):
    def batches(self, shard, mode: ClipMode, epoch: int) -> Iterator[dict]:
        if mode not in (ClipMode.TRAIN, VAL_PROTOCOL):  # what the two datasets were decoded for
            raise ValueError(f"decoded clips serve {ClipMode.TRAIN} and {VAL_PROTOCOL}, not {mode}")
        return shard.iter_torch_batches(batch_size=self.cfg.data.batch_size)

    def worker_protocols(self) -> list[ClipMode]:
        return []  # the driver decodes the val manifest afresh for each protocol after the run


class CachedFrames(ClipSource):
    cache_frames = True

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self._held: dict[str, dict] = {}  # data.hold_in_worker: "train"/"val" -> the shard's rows

    def datasets(self) -> tuple[dict, list[str]]:
        d = self.cfg.data
        start = time.perf_counter()
        print(f"[data] decoding {d.train_manifest} and {d.val_manifest} once into the frame cache", flush=True)
        datasets, classes = super().datasets()
        print(f"[data] frame cache ready: {datasets['train'].count()} train + {datasets['val'].count()} val "
              f"videos in {time.perf_counter() - start:.1f} s", flush=True)
        return datasets, classes

    def batches(self, shard, mode: ClipMode, epoch: int) -> Iterator[dict]:
        from ray.data.collate_fn import NumpyBatchCollateFn

        cfg = self.cfg
        sampler = ClipSampler(clip_spec(cfg, mode), seed=cfg.seed, epoch=epoch)
        if cfg.data.hold_in_worker:
            return self._held_batches(shard, mode, sampler, epoch)

        frames_of = self.frames_of

        class SampledClips(NumpyBatchCollateFn):  # Ray Data calls it in the worker's prefetch thread
            def __call__(self, batch):
                return sampler(frames_of(batch))

        shuffle = {"local_shuffle_buffer_size": cfg.data.shuffle_buffer, "local_shuffle_seed": cfg.seed * 1009 + epoch}
        return shard.iter_torch_batches(batch_size=cfg.data.batch_size, collate_fn=SampledClips(),
                                        **(shuffle if mode == ClipMode.TRAIN else {}))

    def _held_batches(self, shard, mode: ClipMode, sampler: ClipSampler, epoch: int) -> Iterator[dict]:
        """`data.hold_in_worker`: the shard read once into this worker's memory (in path order, so the rows
        do not depend on how Ray Data delivered them), then each epoch a seeded permutation of it in
        training and the path order otherwise, sampled by `sampler` in this thread."""
        split = "train" if mode == ClipMode.TRAIN else "val"
        if split not in self._held:
            self._held[split] = self._worker_rows(shard, split)
        held = self._held[split]
        n, size = len(held["label"]), self.cfg.data.batch_size
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(n) if mode == ClipMode.TRAIN \
            else np.arange(n)
        for i in range(0, n, size):
            pick = order[i:i + size]
            yield sampler({k: v[pick] for k, v in held.items()})

    def _worker_rows(self, shard, split: str) -> dict[str, np.ndarray]:
        """This worker's rows of `split`, in path order: its Ray Data shard read to the end."""
        parts = [self.frames_of(b) for b in shard.iter_batches(batch_size=256, batch_format="numpy")]
        columns = ("frames", "label", "path", "valid")
        return frame_shards.in_path_order({k: np.concatenate([p[k] for p in parts]) for k in columns})

    def worker_protocols(self) -> list[ClipMode]:
        # cached frames serve any protocol; the 1-clip one is the last validation, so it always comes
        return sorted({VAL_PROTOCOL, *(ClipMode(p) for p in self.cfg.eval_protocols)})

    @staticmethod
    def frames_of(batch: dict) -> dict:
        """A batch of the dataset's rows -> the {frames, label, path, valid} columns ClipSampler takes."""
        return batch


class ShardedFrames(CachedFrames):
    def metas(self) -> dict[str, dict]:
        """frames.json of the train and val folders, checked against the run: frames at least as large as
        its clips need, the same classes in both; `FramesError` otherwise."""
        d = self.cfg.data
        metas = {"train": frame_shards.read_meta(d.train_frames), "val": frame_shards.read_meta(d.val_frames)}
        need = clip_spec(self.cfg, ClipMode.TRAIN).decode_short_side
        for split, meta in metas.items():
            if meta["short_side"] < need:
                raise frame_shards.FramesError(
                    f"data.{split}_frames: frames at short side {meta['short_side']} are smaller than crop_size "
                    f"{d.crop_size} needs ({need}): prepare them with --short-side {need}")
        if metas["val"]["classes"] != metas["train"]["classes"]:
            raise frame_shards.FramesError("data.val_frames holds other classes than data.train_frames")
        return metas

    def datasets(self) -> tuple[dict, list[str]]:
        d = self.cfg.data
        classes = self.metas()["train"]["classes"]
        if not self.needs_datasets:
            return {}, classes
        return {"train": frame_shards.frames_dataset(d.train_frames, num_cpus=d.decode_cpus),
                "val": frame_shards.frames_dataset(d.val_frames, num_cpus=d.decode_cpus)}, classes

    @property
    def needs_datasets(self) -> bool:  # held in the worker: it reads the folders itself (`_worker_rows`)
        return not self.cfg.data.hold_in_worker

    def _worker_rows(self, shard, split: str) -> dict[str, np.ndarray]:
        """The folder read straight into the worker (a Ray Data pass cost a trial 20-30 s of start-up here),
        then every world_size-th row from the worker's rank, cut to the same count in every worker, as Ray
        Train's equal split does: DDP workers must step the same number of batches."""
        import ray.train

        ctx = ray.train.get_context()
        rank, world = ctx.get_world_rank(), ctx.get_world_size()
        rows = frame_shards.read_rows(self.cfg.data.train_frames if split == "train" else self.cfg.data.val_frames)
        end = len(rows["label"]) // world * world
        return {k: v[rank:end:world] for k, v in rows.items()}

    @staticmethod
    def frames_of(batch: dict) -> dict:
        return frame_shards.frames_of_rows(batch)


def clip_source(cfg: TrainConfig) -> ClipSource:
    if cfg.data.train_frames is not None:
        return ShardedFrames(cfg)
    return CachedFrames(cfg) if cfg.data.cache_frames else DecodedClips(cfg)
