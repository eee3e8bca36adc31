"""The block kernel of two revisions of ext/, in one process, block by block, interleaved.

Builds the CPU sources of ext/ at a git revision (`--base`, default HEAD) and of the working tree, each
under its own torch library name (`rubiks_base`, `rubiks_work`), then times `block_forward` of both on
every block of a RubiksNet tier in its inference form (batch 1, 8 frames at 224², fp32): each round runs
every block with both builds, so load on the machine hits both alike. Outputs are checked against each
other (1e-4) before timing. Prints JSON (machine, load average, per block, totals and the ratio
base / work: above 1, the working tree is faster); `--out` writes it too. Builds take ~2 minutes each
(cached under --build-dir).

    python bench/bench_block_revisions.py --base HEAD~1 --threads 2 --variant rs-aq
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_block_gemm import _block_inputs  # noqa: E402
from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402
from rubiks_service.models import build_model  # noqa: E402
from rubiks_service.models.inference import inference_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ext_files(revision: str | None) -> dict[str, str]:
    """ext/'s C++ sources (CUDA left out) of `revision` (None: the working tree): {relative path: text}."""
    with tempfile.TemporaryDirectory() as tmp:
        if revision is None:
            shutil.copytree(os.path.join(ROOT, "ext"), os.path.join(tmp, "ext"))
        else:
            archive = subprocess.run(["git", "-C", ROOT, "archive", revision, "ext"], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        ext = os.path.join(tmp, "ext")
        paths = [p for p in glob.glob(os.path.join(ext, "**", "*"), recursive=True)
                 if os.path.isfile(p) and os.sep + "cuda" + os.sep not in p]
        out = {}
        for path in paths:
            with open(path) as f:
                out[os.path.relpath(path, ext)] = f.read()
        return out


def _build(revision: str | None, lib: str, build_dir: str) -> None:
    """Compile ext/'s CPU sources with every torch library renamed to `lib` and load them. Files are
    rewritten only where their text changed, so ninja rebuilds only what changed since the last run."""
    from torch.utils import cpp_extension

    src = os.path.join(build_dir, f"src_{lib}")
    files = []
    for rel, text in _ext_files(revision).items():
        text = re.sub(r"TORCH_LIBRARY(_IMPL)?\(rubiks,", lambda m: f"TORCH_LIBRARY{m.group(1) or ''}({lib},", text)
        path = os.path.join(src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as f:
                f.write(text)
        if path.endswith(".cpp"):
            files.append(path)
    out = os.path.join(build_dir, lib)
    os.makedirs(out, exist_ok=True)
    _log(f"[bench] building {revision or 'the working tree'} as torch.ops.{lib}")
    cpp_extension.load(name=f"{lib}_ext", sources=sorted(files), is_python_module=False, build_directory=out,
                       extra_cflags=["-O3", "-fopenmp", "-std=c++17", f"-DRUBIKS_LIBRARY={lib}"],
                       extra_ldflags=["-fopenmp"], verbose=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="HEAD", help="git revision of the baseline ext/ (default HEAD)")
    p.add_argument("--model", default="rubiksnet-tiny")
    p.add_argument("--variant", default="rs", choices=["rs", "rs-q", "rs-aq"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--build-dir", default=os.path.join(tempfile.gettempdir(), "rubiks-block-revisions"))
    p.add_argument("--out")
    args = p.parse_args(argv)
    libs = {"base": "rubiks_base", "work": "rubiks_work"}
    _build(args.base, libs["base"], args.build_dir)
    _build(None, libs["work"], args.build_dir)
    torch.set_num_threads(args.threads)
    load_start = round(os.getloadavg()[0], 2)
    model = inference_model(build_model(args.model, variant=args.variant, num_classes=174, num_frames=args.frames).eval())
    blocks = _block_inputs(model, torch.randn(1, args.frames, 3, args.size, args.size))
    ops = {key: getattr(torch.ops, lib).block_forward for key, lib in libs.items()}
    best = {(i, key): float("inf") for i in range(len(blocks)) for key in ops}
    with torch.no_grad():
        for block, x in blocks:
            if block.kernel_args is None:
                raise SystemExit(f"{args.model}: a block without the block kernel (build the extension first)")
            torch.testing.assert_close(ops["work"](x, *block.kernel_args), ops["base"](x, *block.kernel_args),
                                       rtol=1e-4, atol=1e-4)
        for r in range(args.rounds):
            for i, (block, x) in enumerate(blocks):
                for key, op in ops.items():
                    start = time.perf_counter()
                    op(x, *block.kernel_args)
                    best[(i, key)] = min(best[(i, key)], time.perf_counter() - start)
            _log(f"[bench]   round {r + 1}/{args.rounds} done")
    rows = [{"input": list(x.shape), "stride": block.kernel_args[7],
             **{f"{key}_ms": round(1e3 * best[(i, key)], 3) for key in ops},
             "ratio": round(best[(i, "base")] / best[(i, "work")], 3)} for i, (block, x) in enumerate(blocks)]
    totals = {key: round(sum(r[f"{key}_ms"] for r in rows), 2) for key in ops}
    result = {"benchmark": "block_revisions", "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                                                          "torch": torch.__version__},
              "load_average": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
              "setup": {"base": args.base, "work": "working tree", "model": args.model, "variant": args.variant,
                        "threads": args.threads, "batch": 1, "frames": args.frames, "size": args.size,
                        "rounds": args.rounds, "timer": "min over interleaved rounds, per block"},
              "blocks": rows, "total_ms": totals, "ratio_base_over_work": round(totals["base"] / totals["work"], 3)}
    emit_json(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
