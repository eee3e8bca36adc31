"""GPU benchmark of the RubiksShift CUDA kernels, against the memory floor, grid_sample
and the paper's Table A2 blocks.

For each input (N, T, C, H, W) (default: the Table A2 block input (8, 8, 72, 56, 56)
and a training-size batch (32, 8, 144, 56, 56)) and each dtype (float32, bfloat16),
forward and forward+backward of:
  - clone:        x.clone(), a device-to-device copy (the floor: read x, write out)
  - op:           rubiks_shift3d(x, shift) (gradients for x and shift in the backward)
  - grid_sample:  the same op written with F.grid_sample (reference.shift3d_grid_sample)
  - blocks, each followed by BatchNorm + ReLU, output channels = input channels:
      conv3d:  Conv3d 3x3x3 (on the (N, C, T, H, W) view of the same data)
      tsm:     TSM temporal shift (1/8 channels each way) + Conv2d 3x3
      rubiks:  RubiksShift3d + Conv2d 1x1 (the RubiksNet block)

The op and grid_sample run in the benchmark dtype directly (x and shift both in it).
The blocks run as in mixed-precision training: float32 parameters, and for bfloat16
the input in bfloat16 under torch.autocast("cuda", dtype=torch.bfloat16) (the shift
follows x's dtype under autocast). Forward: eval mode under no_grad; forward+backward:
train mode (batch statistics), gradients for the input and every parameter.

Timing: CUDA events around batches of calls (after warm-up), batches repeated for
--min-run-time seconds, median per call. Memory stays warm between calls (at the
smaller size the tensors partly fit in the L2 cache, as in a real network). TF32
settings are torch's defaults unless --no-tf32; the JSON records them.

    python bench/bench_shift_gpu.py --out bench/results/shift-gpu-$(date +%F).json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

from rubiks_service.models.tsm import temporal_shift
from rubiks_service.ops import RubiksShift3d, has_kernel, reference, rubiks_shift3d

sys.path.insert(0, os.path.dirname(__file__))
from bench_shift_cpu import emit_json  # noqa: E402

DEFAULT_SHAPES = ["8,8,72,56,56", "32,8,144,56,56"]
# the bars at the Table A2 input, in every dtype: the op against a device-to-device copy, and the
# blocks against the RubiksShift block (the paper, Titan Xp: 3D conv 7.98, TSM 3.59, RubiksShift 0.90 ms)
GOAL_SHAPE = (8, 8, 72, 56, 56)
GOALS = {"op_forward_vs_clone": ("<=", 1.5), "op_fwd_bwd_vs_clone": ("<=", 4.0),
         **{f"{block}_block_vs_rubiks_block_{mode}": (">=", bar)
            for block, bar in (("conv3d", 8.9), ("tsm", 4.0)) for mode in ("forward", "fwd_bwd")}}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEV = "cuda"


def _time_ms(fn, min_run_time: float, warmup: int = 3, batch_ms: float = 20.0) -> float:
    """Median milliseconds per call of `fn`, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    inner = max(1, min(1000, int(batch_ms / max(start.elapsed_time(end), 1e-3))))
    samples = []
    t0 = time.perf_counter()
    while len(samples) < 5 or time.perf_counter() - t0 < min_run_time:
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / inner)
    return statistics.median(samples)


# ---- Table A2 blocks (each: op + BatchNorm + ReLU) on a (N, T, C, H, W) clip ----

class Conv3dBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv3d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm3d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):  # x: (N, C, T, H, W), the layout Conv3d wants (permuted once, untimed)
        return self.relu(self.bn(self.conv(x)))


class TSMBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):  # (N, T, C, H, W)
        n, t, c, h, w = x.shape
        y = temporal_shift(x).reshape(n * t, c, h, w)
        return self.relu(self.bn(self.conv(y)))


class RubiksBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.shift = RubiksShift3d(c)
        self.conv = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):  # (N, T, C, H, W)
        y = self.shift(x)
        n, t, c, h, w = y.shape
        return self.relu(self.bn(self.conv(y.reshape(n * t, c, h, w))))


def _op_timings(x, shift, min_run_time, with_grid_sample):
    grad = torch.randn_like(x)
    xg = x.detach().clone().requires_grad_()
    sg = shift.detach().clone().requires_grad_()

    def fwd_bwd(fn):
        def step():
            out = fn(xg, sg)
            torch.autograd.backward(out, grad)
            xg.grad = sg.grad = None
        return step

    ms = {}
    with torch.no_grad():
        ms["clone"] = _time_ms(lambda: x.clone(), min_run_time)
        ms["op_forward"] = _time_ms(lambda: rubiks_shift3d(x, shift), min_run_time)
        if with_grid_sample:
            ms["grid_sample_forward"] = _time_ms(lambda: reference.shift3d_grid_sample(x, shift), min_run_time)
    ms["op_fwd_bwd"] = _time_ms(fwd_bwd(rubiks_shift3d), min_run_time)
    if with_grid_sample:
        ms["grid_sample_fwd_bwd"] = _time_ms(fwd_bwd(reference.shift3d_grid_sample), min_run_time)
    return ms


def _block_timings(x, dtype, min_run_time):
    c = x.shape[2]
    autocast = dict(device_type=DEV, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    x_ncthw = x.permute(0, 2, 1, 3, 4).contiguous()
    blocks = {
        "conv3d": (Conv3dBlock(c), x_ncthw),
        "tsm": (TSMBlock(c), x),
        "rubiks": (RubiksBlock(c), x),
    }
    ms = {}
    for name, (block, inp) in blocks.items():
        block = block.to(DEV)
        inp_g = inp.detach().clone().requires_grad_()
        with torch.no_grad(), torch.autocast(**autocast):
            grad = torch.randn_like(block.eval()(inp))  # the output's shape and dtype

        def forward(block=block, inp=inp):
            with torch.no_grad(), torch.autocast(**autocast):
                return block(inp)

        def fwd_bwd(block=block, inp_g=inp_g, grad=grad):
            with torch.autocast(**autocast):
                out = block(inp_g)
            out.backward(grad)
            block.zero_grad(set_to_none=True)
            inp_g.grad = None

        block.eval()
        ms[f"{name}_block_forward"] = _time_ms(forward, min_run_time)
        block.train()
        ms[f"{name}_block_fwd_bwd"] = _time_ms(fwd_bwd, min_run_time)
        del block, inp_g, grad
        torch.cuda.empty_cache()
    return ms


def _ratios(ms: dict) -> dict:
    r = {
        "op_forward_vs_clone": ms["op_forward"] / ms["clone"],
        "op_fwd_bwd_vs_clone": ms["op_fwd_bwd"] / ms["clone"],
    }
    if "grid_sample_forward" in ms:
        r["grid_sample_vs_op_forward"] = ms["grid_sample_forward"] / ms["op_forward"]
        r["grid_sample_vs_op_fwd_bwd"] = ms["grid_sample_fwd_bwd"] / ms["op_fwd_bwd"]
    for mode in ("forward", "fwd_bwd"):
        rubiks = ms.get(f"rubiks_block_{mode}")
        if rubiks:
            r[f"conv3d_block_vs_rubiks_block_{mode}"] = ms[f"conv3d_block_{mode}"] / rubiks
            r[f"tsm_block_vs_rubiks_block_{mode}"] = ms[f"tsm_block_{mode}"] / rubiks
            r[f"shift_share_of_rubiks_block_{mode}"] = ms[f"op_{mode}"] / rubiks
    return {k: round(v, 3) for k, v in r.items()}


def _goals(results: list) -> list:
    """Each bar at GOAL_SHAPE, per dtype: the ratio measured and whether it meets the bar."""
    got = []
    for row in results:
        if tuple(row["shape_NTCHW"]) != GOAL_SHAPE:
            continue
        for key, (op, bar) in GOALS.items():
            value = row["ratios"].get(key)
            if value is not None:
                met = value <= bar if op == "<=" else value >= bar
                got.append({"dtype": row["dtype"], "ratio": key, "value": value, "bar": f"{op} {bar}", "met": met})
    return got


def run(shapes, dtypes, min_run_time: float = 1.0, with_blocks: bool = True, with_grid_sample: bool = True,
        seed: int = 0) -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    if not has_kernel(torch.device(DEV)):
        raise SystemExit("the extension has no CUDA kernels: build it where nvcc and a CUDA torch are present")
    torch.manual_seed(seed)
    props = torch.cuda.get_device_properties(0)
    results = []
    for shape in shapes:
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            x = torch.randn(shape, device=DEV, dtype=dtype)
            shift = (torch.rand(3, shape[2], device=DEV) * 2 - 1).to(dtype)
            ms = _op_timings(x, shift, min_run_time, with_grid_sample)
            if with_blocks:
                ms.update(_block_timings(x, dtype, min_run_time))
            bytes_moved = 2 * x.numel() * x.element_size()
            results.append({
                "shape_NTCHW": list(shape),
                "dtype": dtype_name,
                "median_ms": ms,
                "clone_GB_per_s": round(bytes_moved / (ms["clone"] * 1e-3) / 1e9, 1),
                "ratios": _ratios(ms),
            })
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            del x, shift
            torch.cuda.empty_cache()
    return {
        "benchmark": "rubiks_shift3d_gpu",
        "date": dt.date.today().isoformat(),
        "machine": {
            "gpu": torch.cuda.get_device_name(0),
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_GiB": round(props.total_memory / 2**30, 1),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "python": sys.version.split()[0],
            "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
        },
        "timing": "CUDA events, median ms per call over batches of calls, warm memory",
        "results": results,
        "goals": _goals(results),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="N,T,C,H,W each")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--no-blocks", action="store_true", help="skip the Table A2 blocks")
    parser.add_argument("--no-grid-sample", action="store_true", help="skip the grid_sample formulation")
    parser.add_argument("--no-tf32", action="store_true", help="disable TF32 in convolutions and matmuls")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
    if any(len(s) != 5 for s in shapes):
        parser.error("each shape is N,T,C,H,W")
    result = run(shapes, args.dtypes, args.min_run_time, not args.no_blocks, not args.no_grid_sample)
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
