"""CPU benchmark of the RubiksShift op against the memory-bandwidth floor and grid_sample.

On one tensor (N, T, C, H, W) = (8, 8, 72, 56, 56) fp32 (the paper's Table A2
block input), in one process: x.clone() (the floor), the compiled op, and the
grid_sample formulation, forward and forward+backward (gradients for x and
shift). The clone and the op run interleaved, round by round, and the ratios
come from their minima, so load on a shared machine hits both alike. Prints a
JSON object of minima, medians and ratios (with the load average); `--out`
also writes it.

    python bench/bench_shift_cpu.py --out bench/results/cpu-$(date +%F).json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time

import torch
from torch.utils import benchmark

from rubiks_service.ops import has_kernel, reference, rubiks_shift3d

TARGETS = {"forward_vs_clone": 2.0, "fwd_bwd_vs_clone": 6.0, "speedup_vs_grid_sample": 10.0}
# the CPU-efficiency issue's aims for the op itself (tighter than the targets)
AIMS = {"forward_vs_clone": 1.4, "fwd_bwd_vs_clone": 3.5}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def emit_json(result: dict, out: str | None, *, echo: bool = True) -> None:
    """Print a benchmark result as JSON (unless `echo` is False) and, with `out`, also write it there
    (shared by bench/*)."""
    text = json.dumps(result, indent=2)
    if echo:
        print(text)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(text + "\n")


def _median_ms(stmt, min_run_time: float) -> float:
    timer = benchmark.Timer(stmt="stmt()", globals={"stmt": stmt})
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def _interleaved_ms(calls: dict, min_run_time: float) -> dict[str, dict[str, float]]:
    """Min and median ms of every call over rounds that each run every call once (at least 5 rounds,
    and until min_run_time seconds of the slowest call have passed)."""
    for fn in calls.values():
        fn()
    times = {key: [] for key in calls}
    while len(times[next(iter(calls))]) < 5 or max(sum(t) for t in times.values()) < min_run_time:
        for key, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: {"min": min(t) * 1e3, "median": statistics.median(t) * 1e3, "rounds": len(t)}
            for key, t in times.items()}


def run(shape=(8, 8, 72, 56, 56), min_run_time: float = 2.0, seed: int = 0) -> dict:
    if not has_kernel(torch.device("cpu")):
        raise SystemExit("the compiled extension is not available: build it first (README)")
    torch.manual_seed(seed)
    x = torch.randn(shape, requires_grad=True)
    shift = (torch.rand(3, shape[2]) * 2 - 1).requires_grad_()
    grad = torch.randn(shape)

    def fwd_bwd(fn):
        def step():
            out = fn(x, shift)
            torch.autograd.backward(out, grad)
            x.grad = shift.grad = None
        return step

    load_start = round(os.getloadavg()[0], 2)

    def forward():
        with torch.no_grad():
            rubiks_shift3d(x, shift)

    def clone():
        with torch.no_grad():
            x.clone()

    # the op against its floor, interleaved: each round runs all three, so load hits them alike
    rounds = _interleaved_ms({"clone": clone, "op_forward": forward, "op_fwd_bwd": fwd_bwd(rubiks_shift3d)},
                             min_run_time)
    clone_ms, op_fwd_ms, op_fb_ms = (rounds[k]["min"] for k in ("clone", "op_forward", "op_fwd_bwd"))
    with torch.no_grad():
        grid_fwd_ms = _median_ms(lambda: reference.shift3d_grid_sample(x, shift), min_run_time)
    grid_fb_ms = _median_ms(fwd_bwd(reference.shift3d_grid_sample), min_run_time)

    ratios = {
        "forward_vs_clone": op_fwd_ms / clone_ms,
        "fwd_bwd_vs_clone": op_fb_ms / clone_ms,
        "grid_sample_vs_op_forward": grid_fwd_ms / op_fwd_ms,
        "grid_sample_vs_op_fwd_bwd": grid_fb_ms / op_fb_ms,
    }
    return {
        "benchmark": "rubiks_shift3d_cpu",
        "date": dt.date.today().isoformat(),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        },
        "shape_NTCHW": list(shape),
        "dtype": "float32",
        "timing": "clone, op_forward and op_fwd_bwd interleaved per round, ratios from their minima; "
                  "grid_sample: torch.utils.benchmark medians",
        "min_ms": {key: round(r["min"], 3) for key, r in rounds.items()},
        "median_ms": {
            "clone": rounds["clone"]["median"],
            "op_forward": rounds["op_forward"]["median"],
            "op_fwd_bwd": rounds["op_fwd_bwd"]["median"],
            "grid_sample_forward": grid_fwd_ms,
            "grid_sample_fwd_bwd": grid_fb_ms,
        },
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": TARGETS,
        "aims": AIMS,
        "meets_aims": {key: ratios[key] <= aim for key, aim in AIMS.items()},
        # the machine may be shared: how busy it was (1-minute load average at the start and the end)
        "load_average": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "meets_targets": {
            "forward_vs_clone": ratios["forward_vs_clone"] <= TARGETS["forward_vs_clone"],
            "fwd_bwd_vs_clone": ratios["fwd_bwd_vs_clone"] <= TARGETS["fwd_bwd_vs_clone"],
            "speedup_vs_grid_sample_forward": ratios["grid_sample_vs_op_forward"] >= TARGETS["speedup_vs_grid_sample"],
            "speedup_vs_grid_sample_fwd_bwd": ratios["grid_sample_vs_op_fwd_bwd"] >= TARGETS["speedup_vs_grid_sample"],
        },
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=5, default=[8, 8, 72, 56, 56], metavar=("N", "T", "C", "H", "W"))
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("bench_shift_cpu: --threads must be >= 1", file=sys.stderr)
            raise SystemExit(2)
        torch.set_num_threads(args.threads)
    result = run(tuple(args.shape), args.min_run_time)
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
