"""`rubiks eval | predict | export MODEL ...`: a trained model (a checkpoint file, `runs:/…`,
`models:/…`) evaluated on a manifest, classifying videos, or exported to ONNX / pt2."""
from __future__ import annotations

import argparse
import sys

from ._common import LazyChoices, add_address, add_json, add_tracking_args, emit, init_ray, print_json, user_error


def _eval_protocols():
    from rubiks_service.train.config import EVAL_PROTOCOLS

    return EVAL_PROTOCOLS


def _export_formats():
    from rubiks_service.models.export import FORMATS

    return FORMATS


PROTOCOLS = LazyChoices(_eval_protocols)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="a checkpoint file (training or release format; a path or s3:// URI), runs:/<run_id>/model, "
                        "models:/<name>/<version> or models:/<name>@<alias>; for predict also an ONNX file that "
                        "`rubiks export` wrote")
    p.add_argument("--size", type=int,
                   help="input crop size (default: the training config's; 224 for a release-format checkpoint)")
    add_tracking_args(p)


def add_parsers(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a trained model (1-clip / 2-clip)")
    _add_model_args(ev)
    ev.add_argument("--data", required=True, help="manifest to evaluate on")
    ev.add_argument("--data-root", help="folder relative video paths are taken from")
    ev.add_argument("--protocol", action="append", choices=PROTOCOLS, metavar="PROTOCOL",
                    help="%(choices)s (default: the run's protocols)")
    add_address(ev)
    add_json(ev)
    ev.set_defaults(func=_eval)

    pred = sub.add_parser("predict", help="classify video files with a trained model (top-k classes)")
    _add_model_args(pred)
    pred.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (paths or s3:// URIs)")
    pred.add_argument("--topk", type=int, default=5, help="classes to show per video (default 5)")
    pred.add_argument("--protocol", choices=PROTOCOLS, default="1clip", metavar="PROTOCOL",
                      help="evaluation views: 1clip (centre crop) or 2clip (2 clips x 3 crops, averaged)")
    add_json(pred)
    pred.set_defaults(func=_predict)

    exp = sub.add_parser("export", help="export a trained model to ONNX (standard operators) or pt2 (torch.export)")
    _add_model_args(exp)
    exp.add_argument("--format", choices=LazyChoices(_export_formats), metavar="FORMAT", required=True,
                     help="%(choices)s")
    exp.add_argument("--out", required=True, help="file to write")
    exp.add_argument("--frames", type=int, help="frames per clip (default: the model's)")
    exp.add_argument("--int8", action="store_true",
                     help="ONNX only: int8 weights and activations (onnxruntime static quantization), calibrated "
                          "on clips of the training data")
    exp.add_argument("--calib-data", metavar="MANIFEST",
                     help="with --int8: the manifest to calibrate on (default: the run's training manifest)")
    exp.add_argument("--calib-clips", type=int, default=32, help="with --int8: clips to calibrate on (default 32)")
    add_json(exp)
    exp.set_defaults(func=_export)


def _resolve_model(args: argparse.Namespace, command: str):
    """MODEL of predict / eval / export -> LoadedModel, or None after one error line on stderr."""
    from rubiks_service.serving.models import ModelLoadError, resolve_model
    from rubiks_service.serving.onnx_model import is_onnx_file

    if command != "predict" and is_onnx_file(args.model):
        user_error(command, f"{args.model}: an ONNX file runs with `rubiks predict` only; give the model it was "
                            "exported from")
        return None
    try:
        return resolve_model(args.model, tracking_uri=args.tracking_uri, storage_path=args.storage_path,
                             crop_size=args.size)
    except ModelLoadError as exc:
        user_error(command, exc)
        return None


def _eval(args: argparse.Namespace) -> int:
    from rubiks_service.data.manifest import ManifestError, read_manifest
    from rubiks_service.train.trainer import evaluate

    loaded = _resolve_model(args, "eval")
    if loaded is None:
        return 2
    model, cfg, classes = loaded.model, loaded.train_config(args.data), loaded.classes
    try:  # a manifest that cannot be used: one line now, not an error from inside Ray later
        manifest = read_manifest(args.data, data_root=args.data_root,
                                 classes=None if loaded.config is None else loaded.classes)
    except (ManifestError, OSError) as exc:
        return user_error("eval", exc)
    if not manifest.records:
        return user_error("eval", f"{args.data}: no usable rows ({len(manifest.skipped)} skipped)")
    if loaded.config is None:  # a release checkpoint names no classes: the manifest's, if they fit
        classes = manifest.classes
        if len(classes) != len(loaded.classes):
            return user_error("eval", f"{args.data} has {len(classes)} classes, the model {len(loaded.classes)}")
    if args.data_root:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_root": args.data_root})})
    init_ray(args.address)
    from rubiks_service.models.inference import inference_model

    fast = inference_model(model)  # the trained model's logits: BN folded, RS-AQ as integer shifts
    results = {}
    for protocol in args.protocol or cfg.eval_protocols:
        results.update(evaluate(fast, cfg, classes, protocol, manifest=args.data))
    emit(results, args.json, float_format=".4f")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from rubiks_service.serving.predict import predict_videos

    if args.topk < 1:
        return user_error("predict", f"--topk must be >= 1, got {args.topk}")
    loaded = _resolve_model(args, "predict")
    if loaded is None:
        return 2
    results = predict_videos(loaded, args.videos, protocol=args.protocol, topk=args.topk)
    failed = [r for r in results if "error" in r]
    for row in failed:
        print(f"rubiks predict: {row['error']}", file=sys.stderr)
    if args.json:
        print_json({"model": loaded.source, "resolved": loaded.origin, "protocol": args.protocol, "frames": loaded.segments,
                    "size": loaded.crop_size, "num_classes": len(loaded.classes), "failed": len(failed),
                    "videos": [{k: v for k, v in r.items() if k != "probabilities"} for r in results]})
    else:
        print(f"model: {model_line(loaded)}")
        for row in results:
            if "top" in row:
                print(row["video"])
                for item in row["top"]:
                    print(f"  {item['probability']:7.4f}  {item['class']}")
    return 1 if failed else 0


def model_line(loaded) -> str:
    """What MODEL resolved to, in one line: registered name, version, alias, run and store, or the file."""
    o = loaded.origin
    if o.get("store"):
        what = f"{o['name']} version {o['version']}" if o.get("name") else "the model"
        if o.get("alias"):
            what += f" (alias {o['alias']})"
        return f"{loaded.source} -> {what}, run {o.get('run_id') or '?'}, from {o['store']}"
    line = o.get("file", loaded.source)
    if o.get("format") == "onnx":
        made = ", ".join(f"{k} {o[k]}" for k in ("architecture", "name", "version", "alias", "run_id") if o.get(k))
        line += f" (ONNX{': ' + made if made else ''})"
    return line


def _calibration(args: argparse.Namespace, loaded, frames: int, size: int):
    """--int8's calibration clips (training data), or an exit status after one error line."""
    from rubiks_service.data.manifest import ManifestError, read_manifest
    from rubiks_service.models.quantize import calibration_clips

    manifest, root = args.calib_data, None
    if manifest is None:
        if loaded.config is None:
            return user_error("export", "--int8: the model names no training data; give --calib-data MANIFEST")
        manifest, root = loaded.config.data.train_manifest, loaded.config.data.data_root
    try:
        records = read_manifest(manifest, data_root=root).records
    except (ManifestError, OSError) as exc:
        return user_error("export", exc)
    clips = calibration_clips([r.path for r in records], frames, size, count=args.calib_clips)
    if not clips:
        return user_error("export", f"--int8: no readable video in {manifest} to calibrate on")
    return clips


def _export(args: argparse.Namespace) -> int:
    import os
    import warnings

    from rubiks_service.models.export import export_model
    from rubiks_service.serving.onnx_model import onnx_metadata

    if os.path.isdir(args.out):
        return user_error("export", f"--out {args.out} is a folder: name the file to write")
    if args.int8 and args.format != "onnx":
        return user_error("export", "--int8 is for --format onnx")
    if args.calib_clips < 1:
        return user_error("export", f"--calib-clips must be >= 1, got {args.calib_clips}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        return user_error("export", f"output folder does not exist: {folder}")
    loaded = _resolve_model(args, "export")
    if loaded is None:
        return 2
    frames = args.frames if args.frames is not None else loaded.segments
    size = args.size or loaded.crop_size
    if frames != loaded.segments:
        return user_error("export", f"the model is built for {loaded.segments} frames per clip, not {frames}")
    calibration = None
    if args.int8:
        calibration = _calibration(args, loaded, frames, size)
        if isinstance(calibration, int):
            return calibration
    print(f"[export] {loaded.source} -> {args.out} ({args.format}{', int8' if args.int8 else ''}, "
          f"{frames}x3x{size}x{size}, batch dynamic)", file=sys.stderr, flush=True)
    with warnings.catch_warnings():  # the exporters' deprecation chatter is not the user's business
        warnings.simplefilter("ignore")
        summary = export_model(loaded.model, args.out, args.format, frames=frames, size=size,
                               int8_calibration=calibration,
                               metadata=onnx_metadata(loaded, frames, size) if args.format == "onnx" else None)
    summary["model"] = loaded.source
    emit(summary, args.json)
    return 0
