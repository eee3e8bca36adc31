"""Input-pipeline benchmark: decoded clips per second per CPU core, through the Ray Data
pipeline vs the same decoding (decord + TSN sampling + crops) in a plain loop, on the
same files, at 112^2 and 224^2 output. Prints JSON; the ratio baseline/pipeline per
core is the pipeline's overhead (target <= 1.3).

    python bench/bench_data.py --out bench/results/data-cpu-$(date +%F).json
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time

import torch

from rubiks_service.data.clip_spec import ClipSpec
from rubiks_service.data.decoders import ClipDecoder
from rubiks_service.data.manifest import read_manifest
from rubiks_service.data.ray_dataset import build_dataset
from rubiks_service.data.synth import SynthConfig, generate

sys.path.insert(0, os.path.dirname(__file__))
from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402


def _baseline(manifest: str, spec: ClipSpec) -> float:
    """Clips/s of one process on one core decoding every video once."""
    torch.set_num_threads(1)
    decoder = ClipDecoder(spec, seed=0)
    records = read_manifest(manifest).records
    start = time.perf_counter()
    for record in records:
        decoder.decode(record.path, record.label)
    return len(records) / (time.perf_counter() - start)


def _pipeline(manifest: str, spec: ClipSpec, workers: int, batch_size: int) -> tuple[float, float]:
    """(steady-state clips/s after the first batch, seconds to the first batch)."""
    ds, _ = build_dataset(manifest, spec, batch_size=batch_size, concurrency=workers, shuffle=False)
    start = time.perf_counter()
    first_at, first_n, n = None, 0, 0
    for batch in ds.iter_torch_batches(batch_size=batch_size):
        n += int(batch["valid"].sum())
        if first_at is None:  # actor start-up (process spawn, imports) is paid once per run
            first_at, first_n = time.perf_counter(), n
    return (n - first_n) / (time.perf_counter() - first_at), first_at - start


def run(videos_per_class: int = 16, frames: int = 48, size: int = 256, workers: int | None = None) -> dict:
    import ray

    workers = workers or max(1, (os.cpu_count() or 2) - 1)  # leave a core for the driver and reads
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(tmp, SynthConfig(train_per_class=videos_per_class, val_per_class=0, num_frames=frames, size=size),
                         progress=False)
        # one CPU beyond the decoder actors (which hold theirs) for the consuming driver
        ray.init(address="local", num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for crop in (112, 224):
                spec = ClipSpec(segments=8, crop_size=crop, mode="train")
                base = _baseline(paths["train"], spec)
                pipe, startup = _pipeline(paths["train"], spec, workers, batch_size=8)
                results[f"{crop}x{crop}"] = {
                    "decord_loop_clips_per_s_per_core": round(base, 2),
                    "ray_data_seconds_to_first_batch": round(startup, 2),
                    "ray_data_clips_per_s": round(pipe, 2),
                    "ray_data_clips_per_s_per_core": round(pipe / workers, 2),
                    "overhead_ratio": round(base / (pipe / workers), 3),
                }
        finally:
            ray.shutdown()
    return {
        "benchmark": "data_pipeline",
        "date": dt.date.today().isoformat(),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count()},
        "videos": 8 * videos_per_class,
        "source": f"synthetic h264 mp4, {frames} frames at {size}x{size}",
        "clip": "8 frames (TSN train sampling), multi-scale crop + flip",
        "method": "baseline: the same ClipDecoder in a plain loop on one core; pipeline: steady state after the first batch",
        "pipeline_workers": workers,
        "results": results,
        "target_overhead_ratio": 1.3,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos-per-class", type=int, default=16)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    result = run(args.videos_per_class, workers=args.workers)
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
