"""The Ray Data input pipeline: manifest -> decoded, sampled, augmented clips.

    read_csv / read_parquet(manifest)  ->  random_shuffle (train)
      ->  map_batches(ClipDecoder)      (decord, TSN sampling, crops, flip; uint8 out)
      ->  iter_torch_batches            (in the Train workers, via get_dataset_shard)

A video that cannot be read (missing, empty, truncated, corrupt) or whose label
is not in the class list does not stop the pipeline: its row comes out with
valid=False (a warning names the path), and `ClipBatches` drops it and counts
it; `DataQualityMonitor` raises a clear error when more than the allowed
fraction of the data is unusable, so a run never silently trains on less.

The frame cache (`build_dataset(..., cache_frames=True)`), for datasets that fit in
the object store: every video is decoded once, all its frames at the decode size
(`FrameDecoder`), and materialized; each epoch then only samples and augments
(`ClipSampler`, run by the consumer as its collate function), so an epoch costs
no decoding and every epoch draws fresh frames, crops and flips.

Clips travel as uint8 (V, T, S, S, 3) arrays (V views: 1 for training and the
1-clip protocol, 6 for 2-clip = 2 clips x 3 crops) and are normalised on the
consumer's device.
"""
from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import sampling, transforms
from .manifest import ManifestError, _label_index, read_manifest
from .video import VideoReadError, read_clips

log = logging.getLogger(__name__)

MODES = ("train", "1clip", "2clip")


@dataclass(frozen=True)
class ClipSpec:
    """How one video becomes the model's input."""

    segments: int = 8  # frames per clip (TSN segments)
    crop_size: int = 112
    mode: str = "train"  # train | 1clip | 2clip
    short_side: int | None = None  # decode-time resize; default 256 * crop / 224
    flip: bool = True  # train only
    flip_pairs: Mapping[int, int] = field(default_factory=dict)  # classes that swap under a flip

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown clip mode {self.mode!r}; choose one of {MODES}")
        if self.segments < 1 or self.crop_size < 8:
            raise ValueError(f"bad clip spec: segments={self.segments}, crop_size={self.crop_size}")

    @property
    def views(self) -> int:
        return 6 if self.mode == "2clip" else 1

    @property
    def decode_short_side(self) -> int:
        return self.short_side or transforms.eval_short_side(self.crop_size)


def make_views(clips: Sequence[np.ndarray], label: int, spec: ClipSpec, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Sampled clips of one video -> (V, T, S, S, 3) uint8 views and the (possibly swapped) label."""
    if spec.mode == "train":
        clip = transforms.multi_scale_crop(clips[0], spec.crop_size, rng)
        if spec.flip:
            clip, label = transforms.horizontal_flip(clip, label, rng, spec.flip_pairs)
        return np.ascontiguousarray(clip)[None], label
    short = [transforms.resize_short_side(c, spec.decode_short_side) for c in clips]
    if spec.mode == "1clip":
        return np.ascontiguousarray(transforms.center_crop(short[0], spec.crop_size))[None], label
    views = [v for c in short for v in transforms.three_crops(c, spec.crop_size)]
    return np.ascontiguousarray(np.stack(views)), label


def read_views(path: str, spec: ClipSpec, rng: np.random.Generator | None = None) -> np.ndarray:
    """One video file -> its (V, T, S, S, 3) uint8 views under `spec`, the same sampling and crops as
    the decoders; raises `VideoReadError` (for callers that report per file, like `rubiks predict`)."""
    rng = rng or np.random.default_rng()
    clips = read_clips(path, lambda n: sampling.clip_indices(n, spec.segments, spec.mode, rng), spec.decode_short_side)
    return make_views(clips, 0, spec, rng)[0]


class _VideoRows:
    """What both decoders share: label lookup, path resolution, and a bad video turned into
    a warning and a flagged row instead of an exception."""

    def __init__(self, classes: Sequence[str], root: str) -> None:
        self.classes = list(classes)
        self.by_name = {name: i for i, name in enumerate(self.classes)}
        self.root = root
        torch.set_num_threads(1)  # one decoder actor per CPU: no oversubscription from resize ops

    def read(self, path: str, label, choose, short_side: int) -> tuple[list[np.ndarray] | None, int]:
        """(clips, class index); clips is None when the video or its label is unusable."""
        index = _label_index(label.item() if hasattr(label, "item") else label, self.classes, self.by_name)
        if index is None:
            log.warning("skipping %s: label %r not in the class list", path, label)
            return None, -1
        full = path if os.path.isabs(path) else os.path.join(self.root, path)
        try:
            return read_clips(full, choose, short_side), index
        except VideoReadError as exc:
            log.warning("skipping unreadable video %s", exc)
            return None, index


class ClipDecoder(_VideoRows):
    """`map_batches` stage: manifest rows -> {clip, label, valid}; bad videos flagged, not raised."""

    def __init__(self, spec: ClipSpec, classes: Sequence[str], root: str, seed: int | None = None) -> None:
        super().__init__(classes, root)
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def _choose(self, num_frames: int) -> list[np.ndarray]:
        return sampling.clip_indices(num_frames, self.spec.segments, self.spec.mode, self.rng)

    def decode(self, path: str, label) -> tuple[np.ndarray, int, bool]:
        spec = self.spec
        clips, index = self.read(path, label, self._choose, spec.decode_short_side)
        if clips is None:
            return _empty_views(spec), index, False
        views, index = make_views(clips, index, spec, self.rng)
        return views, index, True

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _clip_rows([self.decode(str(p), label) for p, label in zip(batch["path"], batch["label"])])


def _empty_views(spec: ClipSpec) -> np.ndarray:
    return np.zeros((spec.views, spec.segments, spec.crop_size, spec.crop_size, 3), np.uint8)


def _clip_rows(out: list[tuple[np.ndarray, int, bool]]) -> dict[str, np.ndarray]:
    return {
        "clip": np.stack([o[0] for o in out]),
        "label": np.array([o[1] for o in out], dtype=np.int64),
        "valid": np.array([o[2] for o in out], dtype=bool),
    }


class FrameDecoder(_VideoRows):
    """`map_batches` stage of the frame cache: manifest rows -> {frames, label, path, valid}, every
    frame of each video decoded once at `short_side` (ragged across videos of other sizes)."""

    def __init__(self, short_side: int, classes: Sequence[str], root: str) -> None:
        super().__init__(classes, root)
        self.short_side = short_side

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = np.empty(len(batch["path"]), dtype=object)  # filled one by one: shapes may differ
        labels, valid = [], []
        for i, (path, label) in enumerate(zip(batch["path"], batch["label"])):
            clips, index = self.read(str(path), label, lambda n: [np.arange(n)], self.short_side)
            frames[i] = clips[0] if clips is not None else np.zeros((1, 1, 1, 3), np.uint8)
            labels.append(index)
            valid.append(clips is not None)
        return {"frames": frames, "label": np.array(labels, dtype=np.int64),
                "path": np.array([str(p) for p in batch["path"]]), "valid": np.array(valid, dtype=bool)}


class ClipSampler:
    """Cached frames -> {clip, label, valid} torch tensors: TSN sampling and augmentation of
    already-decoded videos, run by the consumer each epoch. Each video's randomness comes from
    (seed, epoch, its path), so a run reproduces exactly whatever the batching or threading."""

    def __init__(self, spec: ClipSpec, seed: int = 0, epoch: int = 0) -> None:
        self.spec, self.seed, self.epoch = spec, seed, epoch

    def sample(self, frames: np.ndarray, label: int, path: str) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(path.encode())])
        chosen = sampling.clip_indices(len(frames), self.spec.segments, self.spec.mode, rng)
        return make_views([frames[idx] for idx in chosen], label, self.spec, rng)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = []
        for frames, label, path, ok in zip(batch["frames"], batch["label"], batch["path"], batch["valid"]):
            out.append((*self.sample(frames, int(label), str(path)), True) if ok
                       else (_empty_views(self.spec), int(label), False))
        return {key: torch.from_numpy(value) for key, value in _clip_rows(out).items()}


def build_dataset(
    manifest_path: str,
    spec: ClipSpec,
    *,
    data_root: str | None = None,
    classes: Sequence[str] | str | None = None,
    batch_size: int = 8,
    shuffle: bool | None = None,
    num_blocks: int | None = None,
    decode_cpus: float = 1.0,
    concurrency: int | None = None,
    cache_frames: bool = False,
):
    """A Ray Dataset of decoded clips, plus the validated `Manifest` it was built from.

    With `cache_frames`, the dataset holds every video's frames instead (decoded now, once,
    and materialized): the consumer turns them into clips with a `ClipSampler(spec)`, and
    shuffles with its local shuffle buffer (the rows are already in memory).

    Without it, Ray Data re-creates the shuffle and the decoder actors for every epoch from the
    same arguments, so a seed would replay the same order and crops each epoch: training draws
    fresh randomness instead (the frame cache gives varied epochs that also reproduce)."""
    import ray.data

    manifest = read_manifest(manifest_path, data_root=data_root, classes=classes)
    if len(manifest) == 0:
        raise ManifestError(f"{manifest_path}: no usable rows ({len(manifest.skipped)} skipped)")
    reader = ray.data.read_parquet if manifest_path.endswith(".parquet") else ray.data.read_csv
    # the manifest-level steps are light: a tenth of a CPU each, so they never wait behind
    # the decoders and the Train workers that hold the rest
    ds = reader(manifest_path, num_cpus=0.1)  # extra columns are ignored by the decoder
    blocks = num_blocks or max(1, min(len(manifest) // batch_size, 64))
    if (concurrency or 1) > 1 or cache_frames:  # several decoders, or several workers' shards
        ds = ds.repartition(blocks)
    root = data_root or os.path.dirname(os.path.abspath(manifest_path))
    if cache_frames:
        ds = ds.map_batches(FrameDecoder, batch_size=batch_size, batch_format="numpy", num_cpus=decode_cpus,
                            fn_constructor_kwargs={"short_side": spec.decode_short_side,
                                                   "classes": manifest.classes, "root": root},
                            compute=ray.data.ActorPoolStrategy(size=concurrency or 1))
        ds.context.execution_options.preserve_order = True  # a seeded run then sees the same epochs
        return ds.materialize(), manifest
    if shuffle if shuffle is not None else spec.mode == "train":
        ds = ds.random_shuffle(num_cpus=0.1)
    ds = ds.map_batches(
        ClipDecoder,
        fn_constructor_kwargs={"spec": spec, "classes": manifest.classes, "root": root},
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=decode_cpus,
        compute=ray.data.ActorPoolStrategy(size=concurrency or 1),
    )
    return ds, manifest


class DataQualityError(RuntimeError):
    """Too much of the data could not be used."""


@dataclass
class DataQualityMonitor:
    """Counts usable and unusable rows; `check()` enforces the minimum usable fraction."""

    min_valid_fraction: float = 0.9
    seen: int = 0
    bad: int = 0

    def update(self, valid: torch.Tensor) -> None:
        self.seen += int(valid.numel())
        self.bad += int((~valid).sum())

    @property
    def valid_fraction(self) -> float:
        return 1.0 if self.seen == 0 else 1 - self.bad / self.seen

    def check(self) -> None:
        if self.seen and self.valid_fraction < self.min_valid_fraction:
            raise DataQualityError(
                f"only {self.seen - self.bad}/{self.seen} videos ({100 * self.valid_fraction:.1f}%) could be read, "
                f"below the required {100 * self.min_valid_fraction:.0f}%: see the warnings for the paths"
            )


def clip_batches(
    batches: Iterator[dict[str, torch.Tensor]], monitor: DataQualityMonitor, device: torch.device | str = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised (N, V, T, 3, S, S) float clips and labels from `iter_torch_batches` output;
    invalid rows are dropped and counted."""
    for batch in batches:
        valid = batch["valid"].bool()
        monitor.update(valid)
        if not valid.any():
            continue
        clips = batch["clip"][valid].to(device, non_blocking=True)
        yield transforms.normalize(clips), batch["label"][valid].to(device)
    monitor.check()
