"""GPU benchmark of whole models: RubiksNet tiny/large against TSM-R18/R50 under bf16 autocast.

One CUDA device, batch 32 clips of 8 frames at 224^2 (fp32 input, fp32 parameters, the forward
under torch.autocast(dtype=bfloat16), as in mixed-precision training). Per model:
  - inference: eval mode under torch.inference_mode, the model as built;
  - train:     one training step in train mode: forward + cross-entropy under autocast,
               backward, SGD step.
Interleaved (bench_models_cpu's rounds: each round runs every model once, in order); every call
ends in torch.cuda.synchronize, so the wall time of a call is its GPU time. Reported: min and
median ms over the rounds after warm-up, clips/s and GMAC/s (MACs per clip from models/profile.py,
the paper's convention; a training step counts 3x the forward), and the TSM/RubiksNet time ratios
beside the MAC ratios. cudnn.benchmark is on; TF32 stays at torch's defaults (recorded).

    python bench/bench_models_gpu.py --out bench/results/models-gpu-$(date +%F)-<gpu>.json
    python bench/bench_models_gpu.py --device cpu --dtype float32 --batch 2 --frames 4 --size 32 \\
        --models rubiksnet-nano tsm-nano --rounds 1 --warmup 0 --json       # a plumbing run, no GPU
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys

import torch

from rubiks_service.models import MODEL_NAMES
from rubiks_service.models.profile import profile_model

sys.path.insert(0, os.path.dirname(__file__))
from bench_models_cpu import RUBIKS, TSM, _build, _interleaved, _log, _ratios, _summary  # noqa: E402
from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402

DEFAULT_MODELS = ("rubiksnet-tiny", "rubiksnet-large", "tsm-r18", "tsm-r50")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None}  # None: no autocast


def _synced(fn, device: torch.device):
    """`fn` followed by a wait for the device, so a wall-clock timer sees the whole GPU work."""
    if device.type != "cuda":
        return fn

    def call():
        fn()
        torch.cuda.synchronize(device)
    return call


def _phase_rows(times: dict, macs: dict, batch: int, factor: int = 1) -> dict:
    rows = {}
    for key, seconds in times.items():
        row = _summary(seconds, factor * macs[key.split("/")[0]], batch)
        row["clips_per_s"] = round(batch / (row["min_ms"] / 1e3), 1)
        rows[key] = row
    return rows


def run(*, device: str = "cuda", names=DEFAULT_MODELS, batch: int = 32, frames: int = 8, size: int = 224,
        dtype: str = "bfloat16", num_classes: int = 174, variant: str = "rs", warmup: int = 2, rounds: int = 5,
        phases=("inference", "train"), seed: int = 0) -> dict:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_models_gpu: no CUDA device (use --device cpu for a plumbing run)")
    load_start = round(os.getloadavg()[0], 2)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True
    amp = dict(device_type=dev.type, dtype=DTYPES[dtype] or torch.float32, enabled=DTYPES[dtype] is not None)
    models = {name: _build(name, variant, num_classes, frames).to(dev) for name in names}
    macs = {name: profile_model(m, frames=frames, size=size, device=dev).macs for name, m in models.items()}
    machine = {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0],
               "torch": torch.__version__, "platform": platform.platform()}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        machine.update(gpu=torch.cuda.get_device_name(dev), capability=f"{props.major}.{props.minor}",
                       multiprocessors=props.multi_processor_count,
                       memory_GiB=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                       cudnn=torch.backends.cudnn.version(),
                       tf32={"cudnn": torch.backends.cudnn.allow_tf32,
                             "matmul": torch.backends.cuda.matmul.allow_tf32})
    result = {
        "benchmark": "models_gpu",
        "date": dt.date.today().isoformat(),
        "machine": machine,
        "setup": {"device": str(dev), "batch": batch, "frames": frames, "size": size, "num_classes": num_classes,
                  "autocast": dtype if amp["enabled"] else "off (float32)", "parameters": "float32",
                  "rubiksnet_variant": variant, "warmup": warmup, "rounds": rounds, "interleaved": True,
                  "cudnn_benchmark": True,
                  "timer": "time.perf_counter around each call, ending in torch.cuda.synchronize; min and "
                           "median over rounds after warm-up",
                  "gmacs_per_s": "MACs per clip (models/profile.py) x batch / min time; a training step "
                                 "counts 3x the forward MACs"},
        "gmacs": {name: round(m / 1e9, 3) for name, m in macs.items()},
    }
    clips = torch.randn(batch, frames, 3, size, size, device=dev)
    if "inference" in phases:
        calls = {}
        for name, model in models.items():
            def forward(model=model.eval()):
                with torch.autocast(**amp):
                    model(clips)
            calls[f"{name}/inference"] = _synced(forward, dev)
        _log(f"[bench] inference batch {batch}: {warmup} warm-up + {rounds} rounds")
        with torch.inference_mode():
            times = _interleaved(calls, warmup, rounds)
        rows = _phase_rows(times, macs, batch)
        result["inference"] = {"latency": rows, "ratios": _ratios(rows, macs, "inference")}
    if "train" in phases:
        labels = torch.randint(0, num_classes, (batch,), device=dev)
        calls = {}
        for name, model in models.items():
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

            def step(model=model.train(), opt=opt):
                opt.zero_grad(set_to_none=True)
                with torch.autocast(**amp):
                    loss = torch.nn.functional.cross_entropy(model(clips), labels)
                loss.backward()
                opt.step()
            calls[f"{name}/train"] = _synced(step, dev)
        _log(f"[bench] training step batch {batch}: {warmup} warm-up + {rounds} rounds")
        times = _interleaved(calls, warmup, rounds)
        rows = _phase_rows(times, macs, batch, factor=3)
        result["train"] = {"latency": rows, "ratios": _ratios(rows, macs, "train")}
    if dev.type == "cuda":
        result["machine"]["max_memory_allocated_GiB"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    result["machine"]["load_average"] = {"start": load_start, "end": round(os.getloadavg()[0], 2)}
    return result


def _table(result: dict) -> str:
    m, s = result["machine"], result["setup"]
    lines = [f"{m.get('gpu', m['cpu'])}, torch {m['torch']}, batch {s['batch']} x {s['frames']}x{s['size']}^2, "
             f"autocast {s['autocast']}"]
    for phase in ("inference", "train"):
        if phase not in result:
            continue
        lines.append(f"\n{phase}: model                 GMACs   min ms  median ms  clips/s  GMAC/s")
        for key, row in result[phase]["latency"].items():
            lines.append(f"  {key:<26}{result['gmacs'][key.split('/')[0]]:>7.2f}{row['min_ms']:>9.1f}"
                         f"{row['median_ms']:>11.1f}{row['clips_per_s']:>9.1f}{row['gmacs_per_s']:>8.0f}")
        for pair, r in result[phase]["ratios"].items():
            lines.append(f"  {pair:<32} time {r['time']:>5.2f}x   MACs {r['macs']:>5.2f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a plumbing run")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODEL_NAMES, metavar="MODEL",
                        help=f"default {' '.join(DEFAULT_MODELS)}; ratios pair {'/'.join(TSM)} with "
                             f"{'/'.join(RUBIKS)}")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--dtype", choices=list(DTYPES), default="bfloat16", help="autocast dtype (float32: off)")
    parser.add_argument("--variant", choices=["rs", "rs-q", "rs-aq"], default="rs", help="RubiksNet variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds")
    parser.add_argument("--phases", nargs="+", choices=["inference", "train"], default=["inference", "train"])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    if min(args.batch, args.frames, args.size, args.rounds) < 1 or args.warmup < 0:
        print("bench_models_gpu: --batch, --frames, --size and --rounds must be >= 1, --warmup >= 0",
              file=sys.stderr)
        return 2
    try:
        torch.device(args.device)
    except RuntimeError:
        print(f"bench_models_gpu: --device {args.device!r} is not a torch device", file=sys.stderr)
        return 2
    result = run(device=args.device, names=tuple(args.models), batch=args.batch, frames=args.frames,
                 size=args.size, dtype=args.dtype, variant=args.variant, warmup=args.warmup, rounds=args.rounds,
                 phases=tuple(args.phases))
    emit_json(result, args.out, echo=args.json)  # --json: stdout holds only the JSON
    if not args.json:
        print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
