"""Frame-cache benchmark: the input side of a training epoch on the motion dataset, clips
decoded every epoch by Ray Data's decoder actors (the default) vs decoded once into the frame
cache and only sampled and augmented per epoch (`data.cache_frames`). Both are consumed as a
Train worker does (`iter_torch_batches`, batches of 8), on the same files and Ray instance.
Prints JSON: seconds per epoch after the first, the ratio, and what building the cache cost.

    python bench/bench_frame_cache.py --out bench/results/frame-cache-cpu-$(date +%F).json
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time

from rubiks_service.data.synth import SynthConfig, generate
from rubiks_service.data.clip_spec import ClipMode
from rubiks_service.train.clip_source import ClipSource, clip_source
from rubiks_service.train.config import TrainConfig

sys.path.insert(0, os.path.dirname(__file__))
from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402


def _epoch_seconds(ds, source: ClipSource, epochs: int, expected_rows: int) -> list[float]:
    times = []
    for epoch in range(epochs):
        start, n = time.perf_counter(), 0
        for batch in source.batches(ds.iterator(), ClipMode.TRAIN, epoch):
            n += int(batch["valid"].sum())
        times.append(time.perf_counter() - start)
        assert n == expected_rows, (n, expected_rows)  # every video, every epoch
    return times


def run(per_class: int = 60, epochs: int = 3) -> dict:
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(tmp, SynthConfig(train_per_class=per_class, val_per_class=2, num_frames=16, size=64),
                         progress=False)
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        results = {}
        try:
            for cached in (False, True):  # the motion-demo data settings, with and without the cache
                cfg = TrainConfig.model_validate({"data": {
                    "train_manifest": paths["train"], "val_manifest": paths["val"], "segments": 8,
                    "crop_size": 48, "batch_size": 8, "decode_cpus": 0.2, "cache_frames": cached}})
                source = clip_source(cfg)
                start = time.perf_counter()
                datasets, _ = source.datasets()
                build = time.perf_counter() - start
                times = _epoch_seconds(datasets["train"], source, epochs, 8 * per_class)
                results["frame_cache" if cached else "decode_per_epoch"] = {
                    "build_seconds": round(build, 2),  # the cache's one-time decode (both splits)
                    "epoch_seconds": [round(t, 2) for t in times],
                    "steady_clips_per_s": round(8 * per_class * (epochs - 1) / sum(times[1:]), 1),
                }
        finally:
            ray.shutdown()
    base, cache = results["decode_per_epoch"], results["frame_cache"]
    return {
        "benchmark": "frame_cache",
        "date": dt.date.today().isoformat(),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count()},
        "videos": 8 * per_class,
        "source": "built-in motion dataset: h264 mp4, 16 frames at 64x64; clips of 8 frames, 48x48 crops",
        "method": "input side only (no model): epochs after the first, consumed with iter_torch_batches",
        "results": results,
        "speedup_steady_epoch": round(cache["steady_clips_per_s"] / base["steady_clips_per_s"], 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    emit_json(run(args.per_class, args.epochs), args.out)


if __name__ == "__main__":
    main()
