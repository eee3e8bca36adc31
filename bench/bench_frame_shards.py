"""Frame-shards benchmark: training clips per second per CPU core, decoded from mp4 (decord at the
decode size, TSN sampling, multi-scale crop + flip: `ClipDecoder`) against sampled from frame shards
(the Parquet files `rubiks data prepare-frames` writes, read with pyarrow, then the same sampling
and crops: `frames_of_rows` + `ClipSampler`), with the same clip spec, on one core each (one
thread: decord, pyarrow and torch), rounds interleaved in one process. Also what the shards cost
once (decoding every frame) and on disk against the mp4s.

    python bench/bench_frame_shards.py --out bench/results/frame-shards-cpu-$(date +%F).json
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from rubiks_service.data.clip_spec import ClipSpec
from rubiks_service.data.decoders import ClipDecoder, ClipSampler
from rubiks_service.data.frame_shards import PARQUET_OPTIONS, ShardEncoder, frames_of_rows
from rubiks_service.data.manifest import read_manifest
from rubiks_service.data.ray_dataset import manifest_rows
from rubiks_service.data.synth import SynthConfig, generate

sys.path.insert(0, os.path.dirname(__file__))
from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402


def _write_shards(rows: list[dict], short_side: int, folder: str, per_shard: int) -> float:
    """The shards of `rows` as prepare-frames writes them (same encoder and Parquet options); seconds taken."""
    import pyarrow.parquet as pq

    encoder = ShardEncoder(short_side)
    start = time.perf_counter()
    for i in range(0, len(rows), per_shard):
        chunk = rows[i : i + per_shard]
        batch = {key: np.array([r[key] for r in chunk]) for key in ("file", "path", "label")}
        pq.write_table(encoder(batch), os.path.join(folder, f"shard-{i // per_shard:04d}.parquet"), **PARQUET_OPTIONS)
    return time.perf_counter() - start


def _from_mp4(rows: list[dict], spec: ClipSpec) -> float:
    decoder = ClipDecoder(spec, seed=0)
    start = time.perf_counter()
    for row in rows:
        _, _, ok = decoder.decode(row["file"], row["label"])
        assert ok
    return len(rows) / (time.perf_counter() - start)


def _from_shards(folder: str, spec: ClipSpec, videos: int) -> float:
    import pyarrow.parquet as pq

    sampler = ClipSampler(spec, seed=0)
    start, n = time.perf_counter(), 0
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8, use_threads=False):
            cols = frames_of_rows({name: batch.column(name).to_numpy(zero_copy_only=False)
                                   for name in ("frames", "num_frames", "height", "width", "label", "path", "valid")})
            sampler(cols)
            n += len(cols["frames"])
    assert n == videos
    return n / (time.perf_counter() - start)


def run(per_class: int = 4, frames: int = 48, size: int = 256, rounds: int = 3) -> dict:
    import pyarrow

    torch.set_num_threads(1)
    pyarrow.set_cpu_count(1)
    pyarrow.set_io_thread_count(1)
    load_start = round(os.getloadavg()[0], 2)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(tmp, SynthConfig(train_per_class=per_class, val_per_class=0, num_frames=frames, size=size),
                         progress=False)
        rows = manifest_rows(read_manifest(paths["train"]))
        mp4_bytes = sum(os.path.getsize(r["file"]) for r in rows)
        for crop in (112, 224):
            spec = ClipSpec(segments=8, crop_size=crop, mode="train")
            folder = os.path.join(tmp, f"shards-{crop}")
            os.makedirs(folder)
            prepare = _write_shards(rows, spec.decode_short_side, folder, per_shard=8)
            shard_bytes = sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, "*.parquet")))
            mp4, shards = [], []
            for _ in range(rounds):  # interleaved: a change in the machine's load hits both alike
                mp4.append(_from_mp4(rows, spec))
                shards.append(_from_shards(folder, spec, len(rows)))
            results[f"{crop}x{crop}"] = {
                "decode_short_side": spec.decode_short_side,
                "mp4_clips_per_s_per_core": [round(x, 1) for x in mp4],
                "shards_clips_per_s_per_core": [round(x, 1) for x in shards],
                "speedup_median": round(statistics.median(shards) / statistics.median(mp4), 2),
                "prepare_seconds_per_video": round(prepare / len(rows), 3),
                "prepare_cost_in_mp4_epochs": round(prepare / (len(rows) / statistics.median(mp4)), 2),
                "shard_bytes_per_video": shard_bytes // len(rows),
                "shard_to_mp4_size": round(shard_bytes / mp4_bytes, 1),
            }
    return {
        "benchmark": "frame_shards",
        "date": dt.date.today().isoformat(),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count()},
        "load_average": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "videos": len(rows),
        "source": f"built-in motion dataset: h264 mp4, {frames} frames at {size}x{size}",
        "clip": "8 frames (TSN train sampling), multi-scale crop + flip",
        "shards": f"Parquet, 8 videos a file, {PARQUET_OPTIONS}; every frame at the decode short side, uint8",
        "method": ("one process, one thread; each round decodes every video once from mp4 (ClipDecoder) and "
                   "samples every video once from the shards (pyarrow iter_batches + frames_of_rows + "
                   "ClipSampler); clips/s per round, median ratio"),
        "results": results,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    emit_json(run(args.per_class, args.frames, rounds=args.rounds), args.out)


if __name__ == "__main__":
    main()
