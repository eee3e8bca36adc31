"""CPU benchmark of whole models: RubiksNet tiny/small/medium/large against TSM-R18/R34/R50.

One process, a fixed thread count, fp32 clips of 8 frames at 224^2, models in
eval mode under torch.no_grad(). For batch 1 and batch 8, every model is timed
as built (`original`) and in its inference form (`rubiks_service.models.inference`),
interleaved: each round runs every (model, form) once, so load on the machine
hits all of them alike. Reported: min and median latency over the rounds, GMAC/s
(MACs per clip from models/profile.py, the paper's convention, times the batch),
and TSM/RubiksNet time ratios beside the MAC ratios. Then one training step
(train mode, forward + backward + SGD step) at batch 8, also interleaved.
With --profile, the per-op profile (self CPU time, top ops' share) of one
model's inference form at batch 1.

    python bench/bench_models_cpu.py --out bench/results/models-cpu-$(date +%F)-<machine>.json
    python bench/bench_models_cpu.py --quick --json          # fewer rounds, stdout holds only JSON
    python bench/bench_models_cpu.py --batches 1 --train-batch 0 --models rubiksnet-tiny rubiksnet-large \
        tsm-r18 tsm-r50 --profile                              # + where rubiksnet-tiny's time goes
    ... --default-heap     # glibc's defaults: freed activations faulted in again every call (in the JSON)
    ... --forms inference modules channels-last compiled int8   # each model's best forms, best against best

Forms (--forms; each timed where it applies, interleaved with the others):
  original       the model as built (eval mode)
  inference      inference_model(): BN folded, GEMM 1x1s; RubiksNet blocks as one rubiks::block_forward call
  modules        RubiksNet only: inference_model(block_kernel=False), the blocks as separate ops
  channels-last  TSM only: the inference form with channels-last weights (oneDNN's NHWC convolutions)
  compiled       torch.compile (inductor, freezing) of the inference form
  int8           the exported ONNX graph quantized to int8 (onnxruntime static QDQ, models/quantize.py),
                 in onnxruntime with the same threads; calibrated on random clips (latency only)
The `best` ratios compare each model's fastest fp32 form (int8 apart: `best_int8`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import torch

from rubiks_service.models import build_model, model_entry
from rubiks_service.models.inference import inference_model
from rubiks_service.models.process_heap import retain_freed_memory
from rubiks_service.models.profile import profile_model

sys.path.insert(0, os.path.dirname(__file__))
from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402

RUBIKS = ("rubiksnet-tiny", "rubiksnet-small", "rubiksnet-medium", "rubiksnet-large")
TSM = ("tsm-r18", "tsm-r34", "tsm-r50")
# the goals: time ratios TSM / RubiksNet at batch 1 (best fp32 form against best) and for the training step
GOALS = {"tsm-r18/rubiksnet-tiny@batch1": 2.5, "tsm-r50/rubiksnet-large@batch1": 2.0,
         "tsm-r50/rubiksnet-large@train": 1.8}
# (warm-up calls, timed rounds) per phase; batch 8 and training of the large models take seconds a call
ROUNDS = {"full": {"batch1": (2, 7), "batch8": (1, 3), "train": (1, 2)},
          "quick": {"batch1": (1, 3), "batch8": (1, 1), "train": (1, 1)}}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _interleaved(calls: dict[str, callable], warmup: int, rounds: int,
                 faults: dict[str, list[int]] | None = None) -> dict[str, list[float]]:
    """Seconds per call of every entry (and, into `faults`, its minor page faults); each round calls every
    entry once, in order."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times = {key: [] for key in calls}
    faults = {} if faults is None else faults
    faults.update({key: [] for key in calls})
    for i in range(rounds):
        for key, fn in calls.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
            faults[key].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        _log(f"[bench]   round {i + 1}/{rounds} done")
    return times


def _summary(seconds: list[float], macs: int, batch: int, faults: list[int] | None = None) -> dict:
    best, median = min(seconds), statistics.median(seconds)
    row = {"min_ms": round(best * 1e3, 2), "median_ms": round(median * 1e3, 2), "runs": len(seconds),
           "gmacs_per_s": round(macs * batch / best / 1e9, 2)}
    if faults:
        row["minor_faults_per_call"] = statistics.median(faults)
    return row


def _ratios(rows: dict[str, dict], macs: dict[str, int], form: str) -> dict[str, dict]:
    out = {}
    for tsm in TSM:
        for rubiks in RUBIKS:
            if f"{tsm}/{form}" in rows and f"{rubiks}/{form}" in rows:
                out[f"{tsm}/{rubiks}"] = {
                    "time": round(rows[f"{tsm}/{form}"]["min_ms"] / rows[f"{rubiks}/{form}"]["min_ms"], 3),
                    "macs": round(macs[tsm] / macs[rubiks], 3),
                }
    return out


FORMS = ("original", "inference", "modules", "channels-last", "compiled", "int8")
INT8_FORMS = ("int8",)


def _form(name: str, form: str, model: torch.nn.Module, fast: torch.nn.Module):
    """The module of one (model, form), or None where the form does not apply to the family."""
    rubiks = model_entry(name).family == "rubiksnet"
    if form == "original":
        return model
    if form == "inference":
        return fast
    if form == "modules":
        return inference_model(model, block_kernel=False) if rubiks else None
    if form == "channels-last":
        return None if rubiks else inference_model(model).to(memory_format=torch.channels_last)
    if form == "compiled":  # compiled on the first (warm-up) call
        return torch.compile(inference_model(model), options={"freezing": True})
    raise ValueError(form)


def _best(rows: dict[str, dict], macs: dict[str, int], forms: tuple[str, ...], tag: str) -> dict:
    """Each model's fastest form among `forms`, and the TSM / RubiksNet ratios of those."""
    best = {}
    for key, row in rows.items():
        name, form = key.split("/")
        if form in forms and (name not in best or row["min_ms"] < best[name]["min_ms"]):
            best[name] = {"form": form, "min_ms": row["min_ms"]}
    rows_best = {f"{name}/{tag}": {"min_ms": b["min_ms"]} for name, b in best.items()}
    return {"forms": {name: b["form"] for name, b in best.items()}, "ratios": _ratios(rows_best, macs, tag)}


def _inference_phase(models, fast, macs, batch, frames, size, warmup, rounds, ort=None, forms=FORMS[:2],
                     int8=None) -> dict:
    clips = torch.randn(batch, frames, 3, size, size)
    feed = {"clips": clips.numpy()}
    calls = {}
    for name in models:
        for form in forms:
            if form in INT8_FORMS:
                if int8:
                    calls[f"{name}/{form}"] = lambda s=int8[name]: s.run(None, feed)
                continue
            module = _form(name, form, models[name], fast[name])
            if module is not None:
                calls[f"{name}/{form}"] = lambda m=module: m(clips)
        if ort:  # the exported ONNX graph in onnxruntime, same input, same thread count
            calls[f"{name}/onnxruntime"] = lambda s=ort[name]: s.run(None, feed)
    with torch.inference_mode():
        faults: dict[str, list[int]] = {}
        times = _interleaved(calls, warmup, rounds, faults)
    rows = {key: _summary(t, macs[key.split("/")[0]], batch, faults[key]) for key, t in times.items()}
    timed = sorted({key.split("/")[1] for key in rows}, key=lambda f: (FORMS + ("onnxruntime",)).index(f))
    fp32 = tuple(f for f in timed if f not in INT8_FORMS and f != "onnxruntime")
    out = {"latency": rows, "ratios": {form: _ratios(rows, macs, form) for form in timed},
           "best": _best(rows, macs, fp32, "best")}
    if any(f in INT8_FORMS for f in timed):
        out["best_int8"] = _best(rows, macs, tuple(timed), "best_int8")
    return out


def _onnx_sessions(models, frames, size, threads, folder, int8: bool = False) -> dict:
    """One onnxruntime CPU session per model, from `rubiks export`'s ONNX graph (the export builds the
    inference form itself, so it takes the trained model); with `int8`, of its int8 form."""
    import onnxruntime

    from rubiks_service.models.export import export_onnx
    from rubiks_service.models.quantize import quantize_onnx

    sessions = {}
    for name, model in models.items():
        path = os.path.join(folder, f"{name}.onnx")
        _log(f"[bench] exporting {name} to ONNX{' (int8)' if int8 else ''}")
        export_onnx(model, path, frames=frames, size=size)
        if int8:  # latency does not depend on the calibration data: a few random clips
            calibration = [torch.randn(1, frames, 3, size, size).numpy() for _ in range(2)]
            quantize_onnx(path, path.replace(".onnx", "-int8.onnx"), calibration)
            path = path.replace(".onnx", "-int8.onnx")
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sessions[name] = onnxruntime.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sessions


def _train_phase(names, variant, macs, batch, frames, size, num_classes, warmup, rounds) -> dict:
    clips = torch.randn(batch, frames, 3, size, size)
    labels = torch.randint(0, num_classes, (batch,))
    calls = {}
    for name in names:
        model = _build(name, variant, num_classes, frames).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(clips), labels).backward()
            opt.step()
        calls[f"{name}/train"] = step
    faults: dict[str, list[int]] = {}
    times = _interleaved(calls, warmup, rounds, faults)
    rows = {key: _summary(t, 3 * macs[key.split("/")[0]], batch, faults[key]) for key, t in times.items()}  # fwd+bwd ~ 3x
    return {"latency": rows, "ratios": _ratios(rows, macs, "train")}


def _op_profile(model: torch.nn.Module, frames: int, size: int, calls: int = 3, top: int = 8) -> dict:
    """Where the time of one batch-1 forward goes: self CPU time per op (torch.profiler), the top ops
    and their share of the total, so a result says what limits the model."""
    clips = torch.randn(1, frames, 3, size, size)
    with torch.inference_mode():
        model(clips)  # warm-up outside the profile
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                model(clips)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(us for _, us in events)
    ranked = sorted(events, key=lambda e: -e[1])
    rows = [{"op": key, "self_ms_per_call": round(us / calls / 1e3, 2), "share": round(us / total, 3)}
            for key, us in ranked[:top]]
    return {"calls": calls, "self_ms_per_call": round(total / calls / 1e3, 2),
            "minor_page_faults_per_call": faults // calls, "top_ops": rows,
            "other_share": round(1 - sum(r["share"] for r in rows), 3)}


def _build(name: str, variant: str, num_classes: int, frames: int) -> torch.nn.Module:
    kwargs = {"variant": variant} if model_entry(name).family == "rubiksnet" else {}
    return build_model(name, num_classes=num_classes, num_frames=frames, **kwargs)


def run(*, quick: bool = False, threads: int = 2, variant: str = "rs", frames: int = 8, size: int = 224,
        num_classes: int = 174, batches=(1, 8), train_batch: int | None = 8, names=RUBIKS + TSM,
        seed: int = 0, onnxruntime: bool = False, profile: str | None = None, default_heap: bool = False,
        forms: tuple[str, ...] = FORMS[:2]) -> dict:
    load_start = round(os.getloadavg()[0], 2)
    if default_heap:  # before any inference form is built: it keeps freed memory otherwise
        os.environ["RUBIKS_KEEP_HEAP"] = "0"
    heap = retain_freed_memory()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    schedule = ROUNDS["quick" if quick else "full"]
    models = {name: _build(name, variant, num_classes, frames).eval() for name in names}
    fast = {name: inference_model(m) for name, m in models.items()}
    macs = {name: profile_model(m, frames=frames, size=size).macs for name, m in models.items()}
    result = {
        "benchmark": "models_cpu",
        "date": dt.date.today().isoformat(),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform()},
        "setup": {"frames": frames, "size": size, "num_classes": num_classes, "dtype": "float32",
                  "rubiksnet_variant": variant, "rounds": schedule, "interleaved": True, "malloc": heap,
                  "forms": list(forms),
                  "timer": "time.perf_counter per call; min and median over rounds after warm-up",
                  "gmacs_per_s": "MACs per clip (models/profile.py, original model) x batch / min time; "
                                 "training step counts 3x the forward MACs"},
        "gmacs": {name: round(m / 1e9, 3) for name, m in macs.items()},
    }
    with tempfile.TemporaryDirectory() as folder:
        ort = _onnx_sessions(models, frames, size, threads, folder) if onnxruntime else None
        int8 = _onnx_sessions(models, frames, size, threads, folder, int8=True) if "int8" in forms else None
        for batch in batches:
            warmup, rounds = schedule["batch1" if batch == 1 else "batch8"]
            _log(f"[bench] inference batch {batch}: {warmup} warm-up + {rounds} rounds")
            result[f"batch{batch}"] = _inference_phase(models, fast, macs, batch, frames, size, warmup, rounds, ort,
                                                       forms, int8)
        del ort, int8
    if profile:  # the per-op profile of one model's inference form at batch 1
        _log(f"[bench] per-op profile of {profile}/inference")
        result["profile"] = {"model": f"{profile}/inference", "batch": 1,
                             **_op_profile(fast[profile], frames, size)}
    del models, fast
    if train_batch:
        warmup, rounds = schedule["train"]
        _log(f"[bench] training step batch {train_batch}: {warmup} warm-up + {rounds} rounds")
        result["train"] = {"batch": train_batch, **_train_phase(names, variant, macs, train_batch, frames, size,
                                                                 num_classes, warmup, rounds)}
    result["goals"] = _goals(result)
    # the machine is shared: how busy it was (1-minute load average at the start and the end)
    result["machine"]["load_average"] = {"start": load_start, "end": round(os.getloadavg()[0], 2)}
    return result


def _goals(result: dict) -> dict:
    got = {}
    b1 = result.get("batch1", {}).get("best", {}).get("ratios", {})  # best fp32 form against best
    for key, target in GOALS.items():
        pair, where = key.split("@")
        ratio = (result.get("train", {}).get("ratios", {}) if where == "train" else b1).get(pair, {}).get("time")
        if ratio is not None:
            got[key] = {"time_ratio": ratio, "target": target, "met": ratio >= target}
    return got


def _table(result: dict) -> str:
    lines = [f"{result['machine']['cpu']}, {result['machine']['torch_threads']} threads, torch "
             f"{result['machine']['torch']}, {result['setup']['frames']}x{result['setup']['size']}^2 fp32"]
    for phase in [k for k in result if k.startswith("batch")] + (["train"] if "train" in result else []):
        lines.append(f"\n{phase}: model/form            GMACs   min ms  median ms  GMAC/s")
        for key, row in result[phase]["latency"].items():
            lines.append(f"  {key:<28}{result['gmacs'][key.split('/')[0]]:>7.2f}{row['min_ms']:>9.1f}"
                         f"{row['median_ms']:>11.1f}{row['gmacs_per_s']:>8.1f}")
        ratios = dict(result[phase]["ratios"])
        for tag in ("best", "best_int8"):
            if tag in result[phase]:
                ratios[tag] = result[phase][tag]["ratios"]
                lines.append(f"  {tag} forms: " + ", ".join(f"{m} {f}" for m, f in result[phase][tag]["forms"].items()))
        for form, pairs in (ratios.items() if phase != "train" else [("train", ratios)]):
            for pair, r in pairs.items():
                lines.append(f"  {form:<10} {pair:<32} time {r['time']:>5.2f}x   MACs {r['macs']:>5.2f}x")
    if "profile" in result:
        prof = result["profile"]
        lines.append(f"\nper-op profile of {prof['model']} (batch 1, {prof['self_ms_per_call']:.1f} ms self CPU and "
                     f"{prof['minor_page_faults_per_call']} minor page faults a call):")
        for row in prof["top_ops"]:
            lines.append(f"  {row['op']:<32}{row['self_ms_per_call']:>8.1f} ms {100 * row['share']:>5.1f}%")
        lines.append(f"  {'(other ops)':<32}{'':>11} {100 * prof['other_share']:>5.1f}%")
    for key, g in result["goals"].items():
        lines.append(f"goal {key}: {g['time_ratio']:.2f}x (target {g['target']}x) {'met' if g['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--variant", choices=["rs", "rs-q", "rs-aq"], default="rs", help="RubiksNet variant")
    parser.add_argument("--models", nargs="+", choices=RUBIKS + TSM, default=list(RUBIKS + TSM))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--train-batch", type=int, default=8, help="0: skip the training step")
    parser.add_argument("--onnxruntime", action="store_true",
                        help="also time each model's exported ONNX graph in onnxruntime (CPU)")
    parser.add_argument("--profile", nargs="?", const="rubiksnet-tiny", choices=RUBIKS + TSM, metavar="MODEL",
                        help="also record the per-op profile (top ops' share of self CPU time) of MODEL's "
                             "inference form at batch 1 (default rubiksnet-tiny)")
    parser.add_argument("--default-heap", action="store_true",
                        help="leave glibc's malloc settings as they are (the service keeps freed memory in "
                             "the heap: models/process_heap.py), so activations are page-faulted in again on "
                             "every call; recorded in the JSON's setup")
    parser.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS[:2]),
                        help="forms to time (default: original inference; see above)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads < 1 or min(args.batches) < 1 or args.train_batch < 0:
        print("bench_models_cpu: --threads and --batches must be >= 1, --train-batch >= 0", file=sys.stderr)
        return 2
    if args.profile and args.profile not in args.models:
        print(f"bench_models_cpu: --profile {args.profile} is not among --models", file=sys.stderr)
        return 2
    result = run(quick=args.quick, threads=args.threads, variant=args.variant, batches=tuple(args.batches),
                 train_batch=args.train_batch, names=tuple(args.models), onnxruntime=args.onnxruntime,
                 profile=args.profile, default_heap=args.default_heap, forms=tuple(args.forms))
    if args.json:
        emit_json(result, args.out)
    else:
        print(_table(result))
        if args.out:
            emit_json(result, args.out, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
