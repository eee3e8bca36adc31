"""Accuracy of the int8 form against fp32 on a validation set (the motion set), per trained checkpoint.

Each checkpoint is exported to ONNX twice (`models/export.py`): fp32 and int8 (onnxruntime static
quantization, `models/quantize.py`) calibrated on `--calib-clips` clips of the checkpoint's training
manifest. Every validation video is read once as its 1-clip evaluation view and classified by the fp32
inference form in PyTorch and by the int8 graph in onnxruntime. Reported per checkpoint: top-1 of
both with Wilson 95% intervals over the clips, the paired difference (int8 - fp32) with a bootstrap
95% interval over the clips, and how many clips changed their prediction.

    python bench/bench_int8_accuracy.py CKPT [CKPT ...] --data runs/motion-data/val.csv \
        --out bench/results/int8-accuracy-$(date +%F)-<machine>.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tempfile

import numpy as np
import torch

from rubiks_service.data import ClipMode, ClipSpec, read_views
from rubiks_service.data.manifest import read_manifest
from rubiks_service.data.transforms import normalize
from rubiks_service.models.export import export_model
from rubiks_service.models.inference import inference_model
from rubiks_service.models.quantize import calibration_clips
from rubiks_service.serving.models import load_model_file

sys.path.insert(0, os.path.dirname(__file__))
from bench_shift_cpu import _cpu_model, emit_json  # noqa: E402


def wilson(correct: int, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return [0.0, 1.0]
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 5000, seed: int = 0) -> list[float]:
    """95% bootstrap interval of mean(b) - mean(a) over clips resampled with replacement (paired)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    diffs = b[idx].mean(axis=1) - a[idx].mean(axis=1)
    return [round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)]


def evaluate(checkpoint: str, val_manifest: str, calib: int, threads: int) -> dict:
    import onnxruntime

    loaded = load_model_file(checkpoint)
    cfg = loaded.config
    train = read_manifest(cfg.data.train_manifest, data_root=cfg.data.data_root).records
    val = read_manifest(val_manifest, classes=loaded.classes).records
    calibration = calibration_clips([r.path for r in train], loaded.segments, loaded.crop_size, count=calib)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "int8.onnx")
        export_model(loaded.model, path, "onnx", frames=loaded.segments, size=loaded.crop_size,
                     int8_calibration=calibration, check=False)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        fast = inference_model(loaded.model)
        spec = ClipSpec(segments=loaded.segments, crop_size=loaded.crop_size, mode=ClipMode.ONE_CLIP)
        labels, fp32, int8 = [], [], []
        rng = np.random.default_rng(0)
        for record in val:
            clip = normalize(torch.from_numpy(read_views(record.path, spec, rng)[:1]))
            with torch.no_grad():
                fp32.append(int(fast(clip).argmax()))
            int8.append(int(session.run(None, {"clips": clip.numpy()})[0].argmax()))
            labels.append(record.label)
    labels, fp32, int8 = np.array(labels), np.array(fp32), np.array(int8)
    ok32, ok8 = (fp32 == labels).astype(float), (int8 == labels).astype(float)
    n = len(labels)
    return {"checkpoint": checkpoint, "model": type(loaded.model).__name__,
            "variant": getattr(getattr(loaded.model, "cfg", None), "variant", None),
            "model_name": cfg.model.name, "clips": n, "calibration_clips": len(calibration),
            "size": loaded.crop_size, "frames": loaded.segments,
            "fp32_top1": round(ok32.mean(), 4), "fp32_wilson95": wilson(int(ok32.sum()), n),
            "int8_top1": round(ok8.mean(), 4), "int8_wilson95": wilson(int(ok8.sum()), n),
            "diff_int8_minus_fp32": round(ok8.mean() - ok32.mean(), 4),
            "diff_bootstrap95": paired_bootstrap(ok32, ok8), "predictions_changed": int((fp32 != int8).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="training checkpoints (checkpoint.pt)")
    parser.add_argument("--data", required=True, help="the validation manifest")
    parser.add_argument("--calib-clips", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = round(os.getloadavg()[0], 2)
    rows = []
    for ckpt in args.checkpoints:
        print(f"[int8] {ckpt}", file=sys.stderr, flush=True)
        rows.append(evaluate(ckpt, args.data, args.calib_clips, args.threads))
    result = {"benchmark": "int8_accuracy", "date": dt.date.today().isoformat(), "data": args.data,
              "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                          "load_average": {"start": load, "end": round(os.getloadavg()[0], 2)}},
              "method": "1-clip views; fp32 = PyTorch inference form, int8 = onnxruntime QDQ graph; Wilson 95% "
                        "per accuracy, paired bootstrap (5000 resamples over clips) for the difference",
              "results": rows}
    if args.json:
        emit_json(result, args.out)
    else:
        for r in rows:
            print(f"{r['model_name']} {r['variant'] or ''}: fp32 {r['fp32_top1']:.3f} {r['fp32_wilson95']}  "
                  f"int8 {r['int8_top1']:.3f} {r['int8_wilson95']}  diff {r['diff_int8_minus_fp32']:+.3f} "
                  f"{r['diff_bootstrap95']}  changed {r['predictions_changed']}/{r['clips']}")
        if args.out:
            emit_json(result, args.out, echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
