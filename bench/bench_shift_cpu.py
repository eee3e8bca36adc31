"""CPU benchmark of the RubiksShift op against the memory-bandwidth floor and grid_sample.

On one tensor (N, T, C, H, W) = (8, 8, 72, 56, 56) fp32 (the paper's Table A2
block input), in one process: x.clone() (the floor), the compiled op, and the
grid_sample formulation, forward and forward+backward (gradients for x and
shift). Prints a JSON object of medians and ratios; `--out` also writes it.

    python bench/bench_shift_cpu.py --out bench/results/cpu-$(date +%F).json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys

import torch
from torch.utils import benchmark

from rubiks_service.ops import has_kernel, reference, rubiks_shift3d

TARGETS = {"forward_vs_clone": 2.0, "fwd_bwd_vs_clone": 6.0, "speedup_vs_grid_sample": 10.0}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def emit_json(result: dict, out: str | None) -> None:
    """Print a benchmark result as JSON and, with `out`, also write it there (shared by bench/*)."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(text + "\n")


def _median_ms(stmt, min_run_time: float) -> float:
    timer = benchmark.Timer(stmt="stmt()", globals={"stmt": stmt})
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


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

    with torch.no_grad():
        clone_ms = _median_ms(lambda: x.clone(), min_run_time)
        op_fwd_ms = _median_ms(lambda: rubiks_shift3d(x, shift), min_run_time)
        grid_fwd_ms = _median_ms(lambda: reference.shift3d_grid_sample(x, shift), min_run_time)
    op_fb_ms = _median_ms(fwd_bwd(rubiks_shift3d), min_run_time)
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
        "median_ms": {
            "clone": clone_ms,
            "op_forward": op_fwd_ms,
            "op_fwd_bwd": op_fb_ms,
            "grid_sample_forward": grid_fwd_ms,
            "grid_sample_fwd_bwd": grid_fb_ms,
        },
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": TARGETS,
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
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run(tuple(args.shape), args.min_run_time)
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
