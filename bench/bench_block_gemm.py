"""What limits RubiksNet's block kernel on CPU: its GEMMs, or the rest?

For every block of a RubiksNet tier in its inference form (batch 1, 8 frames at 224², fp32, one thread:
the kernel runs one tile per thread), in one process and interleaved round by round:

    block      `rubiks::block_forward`, the whole fused block (shift, 1x1s, BN, ReLU, residual)
    gemm       the block's 1x1 GEMMs alone, one BLAS call per frame (sgemm, as the kernel calls it)
    packed     the same GEMMs with the weights packed once into MKL's panel format (cblas_sgemm_pack,
               then cblas_sgemm_compute): the "pack once, call the micro-kernel" design
    onednn     the same 1x1s as oneDNN's channels-last convolutions over all frames (another GEMM engine)

Sums over the blocks give the share of the block time that is GEMM (the floor a fused design can reach
without a faster GEMM), and whether packed weights pay. Needs torch with MKL (its BLAS symbols are read
from libtorch_cpu). Prints JSON (machine, load average, per block and totals); `--out` writes it too.

    python bench/bench_block_gemm.py --model rubiksnet-tiny --out bench/results/block-gemm-....json
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402
from rubiks_service.models import build_model  # noqa: E402
from rubiks_service.models.inference import InferenceRubiksBlock, inference_model  # noqa: E402

COL_MAJOR, NO_TRANS, B_MATRIX, PACKED = 102, 111, 162, 151


def _blas():
    lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    ip, fp = ctypes.POINTER(i), ctypes.POINTER(f)
    lib.sgemm_.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ip, ip, ip, fp, p, ip, p, ip, fp, p, ip]
    lib.cblas_sgemm_pack_get_size.restype = ctypes.c_size_t
    lib.cblas_sgemm_pack_get_size.argtypes = [i, i, i, i]
    lib.cblas_sgemm_pack.argtypes = [i, i, i, i, i, i, f, p, i, p]
    lib.cblas_sgemm_compute.argtypes = [i, i, i, i, i, i, p, i, p, i, f, p, i]
    return lib


class FrameGemm:
    """out[M x P] = w[M x K] @ x[K x P] for each of `frames` frames, as the block kernel calls BLAS
    (column-major: out^T = x^T w^T), plain or with w packed once."""

    def __init__(self, lib, w: torch.Tensor, pixels: int, frames: int) -> None:
        self.lib, self.frames = lib, frames
        self.M, self.K, self.P = w.shape[0], w.shape[1], pixels
        self.w = np.ascontiguousarray(w.reshape(self.M, self.K).numpy())
        self.x = np.random.rand(frames, self.K, self.P).astype(np.float32)
        self.out = np.zeros((frames, self.M, self.P), np.float32)
        size = lib.cblas_sgemm_pack_get_size(B_MATRIX, self.P, self.M, self.K)
        self.packed = np.zeros(size // 4 + 16, np.float32)
        lib.cblas_sgemm_pack(COL_MAJOR, B_MATRIX, NO_TRANS, self.P, self.M, self.K, 1.0, self._p(self.w), self.K,
                             self._p(self.packed))

    @staticmethod
    def _p(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    def plain(self) -> None:
        r = ctypes.byref
        m, n, k = ctypes.c_int(self.P), ctypes.c_int(self.M), ctypes.c_int(self.K)
        one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
        for t in range(self.frames):
            self.lib.sgemm_(b"N", b"N", r(m), r(n), r(k), r(one), self._p(self.x[t]), r(m), self._p(self.w), r(k),
                            r(zero), self._p(self.out[t]), r(m))

    def packed_call(self) -> None:
        for t in range(self.frames):
            self.lib.cblas_sgemm_compute(COL_MAJOR, NO_TRANS, PACKED, self.P, self.M, self.K, self._p(self.x[t]),
                                         self.P, self._p(self.packed), self.K, 0.0, self._p(self.out[t]), self.P)

    def check(self) -> None:
        want = np.einsum("mk,tkp->tmp", self.w, self.x)
        for call in (self.plain, self.packed_call):
            self.out[:] = 0
            call()
            assert np.allclose(self.out, want, rtol=1e-4, atol=1e-3), call.__name__


def _block_inputs(model: torch.nn.Module, clip: torch.Tensor) -> list[tuple[InferenceRubiksBlock, torch.Tensor]]:
    found = []
    hooks = [m.register_forward_hook(lambda m, args, out: found.append((m, args[0].clone())))
             for m in model.modules() if isinstance(m, InferenceRubiksBlock)]
    with torch.no_grad():
        model(clip)
    for h in hooks:
        h.remove()
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="rubiksnet-tiny")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(1)
    lib = _blas()
    model = inference_model(build_model(args.model, num_classes=174, num_frames=args.frames).eval())
    blocks = _block_inputs(model, torch.randn(1, args.frames, 3, args.size, args.size))
    rows = []
    for block, x in blocks:
        if block.kernel_args is None:
            raise SystemExit(f"{args.model}: a block without the block kernel (build the extension first)")
        stride = block.kernel_args[7]
        h, w = x.shape[-2:]
        hd, wd = (h + stride - 1) // stride, (w + stride - 1) // stride
        gemms = [FrameGemm(lib, block.conv2.weight, h * w, args.frames), FrameGemm(lib, block.conv3.weight, hd * wd, args.frames)]
        convs = [(torch.randn(args.frames, block.conv2.weight.shape[1], h, w), block.conv2.weight),
                 (torch.randn(args.frames, block.conv3.weight.shape[1], hd, wd), block.conv3.weight)]
        if block.shortcut is not None:
            gemms.append(FrameGemm(lib, block.shortcut.weight, hd * wd, args.frames))
            convs.append((torch.randn(args.frames, block.shortcut.weight.shape[1], hd, wd), block.shortcut.weight))
        convs = [(x_.contiguous(memory_format=torch.channels_last), w_.reshape(*w_.shape[:2], 1, 1)) for x_, w_ in convs]
        for g in gemms:
            g.check()
        calls = {"block": lambda: block(x), "gemm": lambda: [g.plain() for g in gemms],
                 "packed": lambda: [g.packed_call() for g in gemms],
                 "onednn": lambda: [torch.nn.functional.conv2d(x_, w_) for x_, w_ in convs]}
        best = dict.fromkeys(calls, float("inf"))
        with torch.no_grad():
            for _ in range(args.rounds):
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    call()
                    best[name] = min(best[name], time.perf_counter() - t0)
        macs = sum(g.M * g.K * g.P * g.frames for g in gemms)
        rows.append({"input": list(x.shape), "stride": stride, "gmacs": macs / 1e9,
                     **{f"{k}_ms": v * 1e3 for k, v in best.items()}})
    total = {k: sum(r[f"{k}_ms"] for r in rows) for k in ("block", "gemm", "packed", "onednn")}
    gmacs = sum(r["gmacs"] for r in rows)
    result = {
        "benchmark": "bench_block_gemm", "model": args.model, "clip": [1, args.frames, 3, args.size, args.size],
        "threads": 1, "rounds": args.rounds, "cpu": _cpu_model(), "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
        "total_ms": total, "gemm_share_of_block": total["gemm"] / total["block"],
        "packed_vs_plain_gemm": total["gemm"] / total["packed"],
        "onednn_vs_plain_gemm": total["gemm"] / total["onednn"],
        "best_engine_per_block_vs_plain": total["gemm"] / sum(min(r["gemm_ms"], r["onednn_ms"]) for r in rows),
        "gmac_per_s": {k: gmacs / total[k] * 1e3 for k in total},
        "blocks": rows,
    }
    emit_json(result, args.out)
    print(f"{args.model}: blocks {total['block']:.1f} ms, their GEMMs alone {total['gemm']:.1f} ms "
          f"({result['gemm_share_of_block']:.0%}), packed weights {total['packed']:.1f} ms "
          f"(x{result['packed_vs_plain_gemm']:.2f} vs plain), oneDNN {total['onednn']:.1f} ms "
          f"(x{result['onednn_vs_plain_gemm']:.2f}; the faster engine per block x{result['best_engine_per_block_vs_plain']:.2f})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
