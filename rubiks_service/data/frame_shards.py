"""Frame shards: a manifest's videos decoded once into resized uint8 frames, stored as Parquet files
in a folder (local or `s3://`), for training runs that must not decode every epoch.

    rubiks data prepare-frames MANIFEST OUT       (`prepare_frames`)
      manifest rows -> Ray Data: FrameDecoder (all frames at the short side) -> ShardEncoder
        -> write_parquet(OUT, one file per `videos_per_shard` videos)   every node writes its own files
      -> OUT/frames.json: the classes, the short side, counts; written last, so a folder without it
         is an interrupted preparation, never read

One row per video:

    path        the video as the manifest lists it (the per-video seed of the sampler, and reports)
    label       class index (the classes are in frames.json)
    valid       False for a video that could not be decoded (kept, so runs count it like a bad video)
    num_frames, height, width
    frames      num_frames x height x width x 3 uint8 bytes, C order (large_binary: no 2 GiB limit)

Why Parquet through Ray Data: the decode runs on every node of the cluster and each writes its shards
straight to the object store (no shared disk, no driver in the data path); any Arrow reader reads them
back with column projection (the counts without the frames); raw uint8 costs a copy to read, where
JPEG frames would cost a decode again. Training reads them with `ray.data.read_parquet` and samples
TSN segments from the frames each epoch (`train.clip_source.ShardedFrames`, `decoders.ClipSampler`).
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence

import numpy as np

from rubiks_service import storage

from .decoders import FrameDecoder
from .manifest import ManifestError, read_manifest
from .ray_dataset import manifest_rows

META_FILE = "frames.json"
FORMAT = "rubiks-frames/1"
COLUMNS = ("path", "label", "valid", "num_frames", "height", "width", "frames")
# zstd is cheap to undo; dictionary encoding of raw frames would only cost time (every value differs)
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": ["path"]}


class FramesError(ValueError):
    """A frames folder that cannot be used, with the reason (one line)."""


class ShardEncoder:
    """`map_batches` stage: manifest rows -> shard rows (a pyarrow Table), every frame decoded at
    `short_side` (FrameDecoder) and laid out as bytes."""

    def __init__(self, short_side: int) -> None:
        self.decoder = FrameDecoder(short_side)

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        out = self.decoder(batch)
        shapes = [f.shape if ok else (0, 0, 0, 3) for f, ok in zip(out["frames"], out["valid"])]
        return pa.table({
            "path": pa.array([str(p) for p in out["path"]], pa.string()),
            "label": pa.array(out["label"], pa.int64()),
            "valid": pa.array(out["valid"], pa.bool_()),
            "num_frames": pa.array([s[0] for s in shapes], pa.int32()),
            "height": pa.array([s[1] for s in shapes], pa.int32()),
            "width": pa.array([s[2] for s in shapes], pa.int32()),
            "frames": pa.array([np.ascontiguousarray(f).tobytes() if ok else b""
                                for f, ok in zip(out["frames"], out["valid"])], pa.large_binary()),
        })


def frames_of_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Shard rows (numpy columns, as a collate function gets them) -> the frame cache's columns
    {frames (object array of (T, H, W, 3) uint8), label, path, valid} that `ClipSampler` takes."""
    frames = np.empty(len(batch["frames"]), dtype=object)
    for i, (data, t, h, w) in enumerate(zip(batch["frames"], batch["num_frames"], batch["height"], batch["width"])):
        frames[i] = np.frombuffer(data, np.uint8).reshape(int(t), int(h), int(w), 3) if t else \
            np.zeros((1, 1, 1, 3), np.uint8)
    return {"frames": frames, "label": batch["label"], "path": batch["path"], "valid": batch["valid"]}


def _parquet_files(folder: str) -> list[str]:
    if storage.is_uri(folder):
        return storage.list_files(folder, (".parquet",))
    import glob
    import os

    return sorted(glob.glob(os.path.join(glob.escape(folder), "**", "*.parquet"), recursive=True))


def prepare_frames(manifest_path: str, out: str, *, short_side: int, data_root: str | None = None,
                   classes: Sequence[str] | str | None = None, videos_per_shard: int = 16,
                   decode_cpus: float = 1.0, concurrency: int | None = None) -> dict:
    """Decode every video of a manifest once into Parquet frame shards under `out`; returns a summary
    (what frames.json holds, plus the seconds it took). Needs Ray started."""
    import ray.data

    out = storage.resolve(out)
    if storage.exists(storage.join(out, META_FILE)) or _parquet_files(out):
        raise FramesError(f"{out} already holds frame shards: remove it or choose another folder")
    manifest = read_manifest(manifest_path, data_root=data_root, classes=classes)
    if len(manifest) == 0:
        raise ManifestError(f"{manifest_path}: no usable rows ({len(manifest.skipped)} skipped)")
    start = time.perf_counter()
    rows = manifest_rows(manifest)
    ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // videos_per_shard)))
    ds = ds.map_batches(ShardEncoder, fn_constructor_kwargs={"short_side": short_side}, batch_size=4,
                        batch_format="numpy", num_cpus=decode_cpus,
                        compute=ray.data.ActorPoolStrategy(size=concurrency or 1))
    # the files' names follow the blocks' order (readers list them sorted), so rows land in manifest order
    # on every machine: a seeded run's shuffle then sees the same input wherever the shards were prepared
    ds.context.execution_options.preserve_order = True
    target, fs = storage.ray_storage(out)
    ds.write_parquet(target, filesystem=fs, min_rows_per_file=videos_per_shard, max_rows_per_file=videos_per_shard,
                     **PARQUET_OPTIONS)
    counts = ray.data.read_parquet(target, filesystem=fs, columns=["path", "valid", "num_frames"],
                                   file_extensions=["parquet"]).to_pandas()
    meta = {
        "format": FORMAT,
        "manifest": manifest_path,
        "short_side": short_side,
        "classes": list(manifest.classes),
        "videos": int(len(counts)),
        "unreadable": sorted(counts.loc[~counts["valid"], "path"].tolist()),
        "skipped_rows": list(manifest.skipped),
        "frames": int(counts["num_frames"].sum()),
        "shards": len(_parquet_files(out)),
    }
    _write_meta(out, meta)
    return {"out": out, **meta, "seconds": round(time.perf_counter() - start, 2)}


def _write_meta(out: str, meta: dict) -> None:
    text = json.dumps(meta, indent=2).encode()
    if storage.is_uri(out):
        storage.write_bytes(storage.join(out, META_FILE), text)
    else:
        import os

        with open(os.path.join(out, META_FILE), "wb") as f:
            f.write(text)


def read_meta(folder: str) -> dict:
    """frames.json of a prepared folder; `FramesError` when there is none (or not ours)."""
    path = storage.join(folder, META_FILE)
    try:
        if storage.is_uri(folder):
            text = storage.read_text(path)
        else:
            with open(path) as f:
                text = f.read()
        meta = json.loads(text)
    except FileNotFoundError:
        raise FramesError(f"{folder}: no {META_FILE}: not a folder written by `rubiks data prepare-frames` "
                          f"(or its preparation was interrupted)") from None
    except json.JSONDecodeError as exc:
        raise FramesError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FramesError(f"{path}: not a {FORMAT} description")
    return meta


def read_rows(folder: str) -> dict[str, np.ndarray]:
    """Every row of a prepared folder read at once with pyarrow, not through Ray Data (for a worker that
    holds its data: one read of a few files, no read tasks to schedule), as `frames_of_rows` columns in
    path order."""
    import pyarrow.parquet as pq

    files = _parquet_files(folder)
    if not files:
        raise FramesError(f"{folder}: no frame shards (*.parquet)")
    if storage.is_uri(folder):
        table = pq.read_table([storage.fs_path(f) for f in files], filesystem=storage.filesystem(), columns=list(COLUMNS))
    else:
        table = pq.read_table(files, columns=list(COLUMNS))
    return in_path_order(frames_of_rows({name: table.column(name).to_numpy(zero_copy_only=False) for name in COLUMNS}))


def in_path_order(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`rows` (columns of equal length) sorted by their video path: the same order however they were read."""
    by_path = np.argsort(rows["path"].astype(str), kind="stable")
    return {k: v[by_path] for k, v in rows.items()}


def frames_dataset(folder: str, num_cpus: float = 1.0):
    """The Ray Dataset of a prepared folder's rows (read lazily, file by file, in a fixed order). `num_cpus`
    per read task: Ray Data's default of 1 cannot be scheduled beside trials that hold fractional CPUs
    on a small machine (Ray Data then waits for resources that never come)."""
    import ray.data

    target, fs = storage.ray_storage(folder)
    ds = ray.data.read_parquet(target, filesystem=fs, columns=list(COLUMNS), file_extensions=["parquet"],
                               num_cpus=num_cpus)
    ds.context.execution_options.preserve_order = True  # a seeded run then sees the same epochs
    return ds
