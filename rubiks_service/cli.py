"""The `rubiks` command line. Sub-commands grow with the service (train, sweep, data, jobs)."""
from __future__ import annotations

import argparse
import json
import platform
import sys


def _info(args: argparse.Namespace) -> int:
    import torch

    from rubiks_service import __version__
    from rubiks_service.ops import has_kernel

    info = {
        "rubiks_service": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "kernels": {d: has_kernel(torch.device(d)) for d in ("cpu", "cuda")},
        "threads": torch.get_num_threads(),
    }
    _emit(info, args.json, width=15)
    return 0


def _emit(result: dict, as_json: bool, width: int = 18) -> None:
    """A result dict as JSON (stdout holds only that) or as aligned `key: value` lines."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>{width}}: {value}")


def _profile(args: argparse.Namespace) -> int:
    import torch

    from rubiks_service.models import build_model
    from rubiks_service.models.profile import profile_model

    overrides = {"variant": args.variant} if args.variant else {}
    try:
        model = build_model(args.model, num_classes=args.num_classes, num_frames=args.frames, **overrides)
    except (ValueError, TypeError) as exc:
        print(f"rubiks profile: {exc}", file=sys.stderr)
        return 2
    if args.convert:
        from rubiks_service.ops.attention_shift import attention_shift_layers

        for layer in attention_shift_layers(model):
            layer.convert_()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    prof = profile_model(model, name=args.model, frames=args.frames, size=args.size, latency=args.latency, device=device)
    if args.json:
        print(json.dumps(prof.to_dict(), indent=2))
        return 0
    print(f"{prof.model}: {prof.num_classes} classes, {prof.frames} frames at {prof.size}x{prof.size}, one view")
    print(f"  params            {prof.params:>14,}")
    print(f"  inference params  {prof.inference_params:>14,}")
    print(f"  MACs              {prof.macs:>14,}  ({prof.gmacs:.3f} G)")
    for kind, macs in sorted(prof.macs_by_kind.items(), key=lambda kv: -kv[1]):
        print(f"    {kind:<16}{macs:>14,}")
    print("  per stage:               MACs         params")
    for stage, row in prof.stages.items():
        print(f"    {stage:<10}{row['macs']:>17,}{row['params']:>15,}")
    if prof.latency is not None:
        lat = prof.latency
        print(f"  latency           {lat['latency_ms']:>11.2f} ms  (min of {lat['repeats']}, median "
              f"{lat['median_ms']:.2f}; inference form, {lat['device']}, batch {lat['batch']}, {lat['threads']} threads)")
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from rubiks_service.data.synth import SynthConfig, generate

    try:
        cfg = SynthConfig(train_per_class=args.train_per_class, val_per_class=args.val_per_class,
                          num_frames=args.frames, size=args.size, seed=args.seed, distractors=args.distractors,
                          noise=args.noise, motion=args.motion)
    except ValueError as exc:
        print(f"rubiks data synth: {exc}", file=sys.stderr)
        return 2
    paths = generate(args.out_dir, cfg, progress=not args.json)
    print(json.dumps(paths, indent=2) if args.json else "\n".join(f"{k:>8}: {v}" for k, v in paths.items()))
    return 0


PREPARE_INPUTS = {
    "ssv2": "LABELS_JSON SPLIT_JSON",
    "ssv1": "LIST_FILE [CATEGORY_FILE]",
    "tsm-list": "LIST_FILE",
    "ucf101": "CLASS_INDEX SPLIT_FILE",
    "hmdb51": "SPLIT_DIR (with --split, --subset)",
    "kinetics": "CSV_FILE",
}


def _data_prepare(args: argparse.Namespace) -> int:
    import os

    from rubiks_service.data.adapters import ADAPTERS
    from rubiks_service.data.manifest import ManifestError, write_classes, write_manifest

    adapter = ADAPTERS[args.format]
    kwargs = {"split": args.split, "subset": args.subset} if args.format == "hmdb51" else {}
    try:
        rows, classes = adapter(*args.inputs, **kwargs)
    except (ManifestError, OSError, TypeError, ValueError, KeyError) as exc:
        print(f"rubiks data prepare {args.format}: {exc} (inputs: {PREPARE_INPUTS[args.format]})", file=sys.stderr)
        return 2
    write_manifest(rows, args.out)
    classes_path = write_classes(classes, os.path.join(os.path.dirname(os.path.abspath(args.out)), "classes.txt"))
    summary = {"manifest": args.out, "classes_file": classes_path, "rows": len(rows), "classes": len(classes)}
    print(json.dumps(summary, indent=2) if args.json else f"wrote {len(rows)} rows, {len(classes)} classes -> {args.out}")
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from rubiks_service.data.inspect import inspect_manifest
    from rubiks_service.data.manifest import ManifestError

    try:
        report = inspect_manifest(args.manifest, data_root=args.data_root, classes=args.classes,
                                  check_videos=not args.no_check, progress=not args.json)
    except ManifestError as exc:
        print(f"rubiks data inspect: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{report.manifest}: {report.videos} videos, {report.classes} classes, "
              f"frames {report.frames_min}..{report.frames_max}")
        for name, count in report.counts_per_class.items():
            print(f"  {count:>7}  {name}")
        for row in report.skipped_rows:
            print(f"  skipped: {row}")
        for bad in report.unreadable:
            print(f"  unreadable: {bad['error']}")
    return 1 if report.unreadable else 0


def _init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), else start an embedded local instance."""
    import os

    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # the dashboard (127.0.0.1 only) is what lets Tune release the CPUs of a trial that ASHA stops
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, log_to_driver=True)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False


def _train(args: argparse.Namespace) -> int:
    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri
    from rubiks_service.train.config import ConfigError, load_config
    from rubiks_service.tune.trial import run_tracked_training

    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as exc:
        print(f"rubiks train: {exc}", file=sys.stderr)
        return 2
    _init_ray(args.address)
    uri = resolve_tracking_uri(args.tracking_uri, cfg.storage_path)
    summary = run_tracked_training(cfg, uri)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:>20}: {value}")
        print(f"\nbrowse: {_browse_hint(uri, cfg.storage_path, cfg.experiment)}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from rubiks_service.tracking.pareto import format_table
    from rubiks_service.tracking.sweep_results import TABLE_COLUMNS, comparison_rows, frontier
    from rubiks_service.train.config import ConfigError
    from rubiks_service.tune.space import load_space
    from rubiks_service.tune.sweep import run_sweep

    try:
        space = load_space(args.space)
    except ConfigError as exc:
        print(f"rubiks sweep: {exc}", file=sys.stderr)
        return 2
    _init_ray(args.address)
    outcome = run_sweep(space, tracking_uri=args.tracking_uri, storage_path=args.storage_path, verbose=args.verbose)
    if args.json:
        print(json.dumps(outcome.__dict__, indent=2, default=str))
        return 0 if outcome.points else 1
    print(f"\nsweep {space.space.name!r}: {outcome.trials} trials ({outcome.errors} failed), "
          f"MLflow experiment {outcome.experiment!r}, parent run {outcome.parent_run_id}")
    print("\nall trials (val_top1: last epoch; 1clip_top1: final evaluation):\n"
          + format_table(outcome.trials_table, ("label", "kind", "model", "outcome", "val_top1", "1clip_top1", "gmacs")))
    if outcome.points:
        rows = comparison_rows(outcome.points)
        columns = [c for c in ("label", "kind", "model", "variant", "budget", "1clip_top1", "2clip_top1", "gmacs",
                               "latency_ms", "frontier_gmacs", "frontier_latency_ms") if any(r.get(c, "") != "" for r in rows)]
        print("\ncomparison by family (frontier_*: on its family's accuracy-vs-cost frontier):\n"
              + format_table(rows, columns))
    print("\nPareto frontier over all trials (1-clip top-1 vs GMACs):\n"
          + format_table(frontier(outcome.points), TABLE_COLUMNS[:-1]))
    if outcome.frontier_png:
        print(f"\nplot (one colour per family, each family's frontier): {outcome.frontier_png}")
        print(f"comparison table: {outcome.frontier_png.rsplit('/', 1)[0]}/comparison.csv")
    if outcome.registered:
        reg = outcome.registered
        print(f"registered model {reg['name']!r}: versions {[v['version'] for v in reg['versions']]}, "
              f"aliases {reg['aliases']} (e.g. rubiks predict models:/{reg['name']}@best-accuracy VIDEO)")
    print(f"\nbrowse: {_browse_hint(args.tracking_uri, args.storage_path or space.trial_config({}).storage_path, outcome.experiment)}")
    return 0 if outcome.points else 1


def _browse_hint(tracking_uri: str | None, storage_path: str, experiment: str) -> str:
    """Where a user sees the runs: the server's training-runs view, or the `rubiks ui` command that opens it."""
    import shlex

    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, storage_path)
    if uri.startswith(("http://", "https://")):
        return _experiment_landing(uri, uri, experiment)
    return f"rubiks ui --tracking-uri {shlex.quote(uri)} --experiment {shlex.quote(experiment)}"


def _pareto(args: argparse.Namespace) -> int:
    from rubiks_service.tracking.mlflow_store import make_client, resolve_tracking_uri
    from rubiks_service.tracking.pareto import format_table
    from rubiks_service.tracking.sweep_results import TABLE_COLUMNS, frontier, latest_sweep, sweep_points

    client = make_client(resolve_tracking_uri(args.tracking_uri, args.storage_path))
    parent = client.get_run(args.run) if args.run else latest_sweep(client, args.experiment)
    if parent is None:
        print(f"rubiks pareto: no sweep found in experiment {args.experiment!r}", file=sys.stderr)
        return 1
    exp_name = client.get_experiment(parent.info.experiment_id).name
    points = sweep_points(client, exp_name, parent.info.run_id)
    cost = {"latency": "latency_ms"}.get(args.cost, args.cost)
    if points and not any(cost in p for p in points):
        print(f"rubiks pareto: no trial of sweep {parent.info.run_id} logged {cost} (measured by trials since "
              "latency became a cost)", file=sys.stderr)
        return 1
    front = frontier([p for p in points if cost in p], cost)
    if args.json:
        print(json.dumps({"parent_run_id": parent.info.run_id, "cost": cost, "frontier": front,
                          "points": points}, indent=2))
    else:
        print(f"sweep {parent.info.run_name!r} ({parent.info.run_id}): {len(points)} finished trials")
        columns = TABLE_COLUMNS if cost in TABLE_COLUMNS else (*TABLE_COLUMNS[:-1], cost, TABLE_COLUMNS[-1])
        print(format_table(front, columns))
    return 0


def _resolve_model(args: argparse.Namespace, command: str):
    """MODEL of predict / eval / export -> LoadedModel, or None after one error line on stderr."""
    from rubiks_service.serving.models import ModelLoadError, resolve_model

    try:
        return resolve_model(args.model, tracking_uri=args.tracking_uri, storage_path=args.storage_path,
                             crop_size=args.size)
    except ModelLoadError as exc:
        print(f"rubiks {command}: {exc}", file=sys.stderr)
        return None


def _eval(args: argparse.Namespace) -> int:
    from rubiks_service.data.manifest import ManifestError, read_manifest
    from rubiks_service.train.trainer import evaluate

    loaded = _resolve_model(args, "eval")
    if loaded is None:
        return 2
    model, cfg, classes = loaded.model, loaded.train_config(args.data), loaded.classes
    if loaded.config is None:  # a release checkpoint names no classes: the manifest's, if they fit
        try:
            classes = read_manifest(args.data, data_root=args.data_root).classes
        except (ManifestError, OSError) as exc:
            print(f"rubiks eval: {exc}", file=sys.stderr)
            return 2
        if len(classes) != len(loaded.classes):
            print(f"rubiks eval: {args.data} has {len(classes)} classes, the model {len(loaded.classes)}",
                  file=sys.stderr)
            return 2
    if args.data_root:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_root": args.data_root})})
    _init_ray(args.address)
    from rubiks_service.models.inference import inference_model

    fast = inference_model(model)  # the trained model's logits: BN folded, RS-AQ as integer shifts
    results = {}
    for protocol in args.protocol or cfg.eval_protocols:
        results.update(evaluate(fast, cfg, classes, protocol, manifest=args.data))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from rubiks_service.serving.predict import predict_videos

    if args.topk < 1:
        print(f"rubiks predict: --topk must be >= 1, got {args.topk}", file=sys.stderr)
        return 2
    loaded = _resolve_model(args, "predict")
    if loaded is None:
        return 2
    results = predict_videos(loaded, args.videos, protocol=args.protocol, topk=args.topk)
    failed = [r for r in results if "error" in r]
    for row in failed:
        print(f"rubiks predict: {row['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps({"model": loaded.source, "protocol": args.protocol, "frames": loaded.segments,
                          "size": loaded.crop_size, "num_classes": len(loaded.classes), "failed": len(failed),
                          "videos": [{k: v for k, v in r.items() if k != "probabilities"} for r in results]},
                         indent=2))
    else:
        for row in results:
            if "top" in row:
                print(row["video"])
                for item in row["top"]:
                    print(f"  {item['probability']:7.4f}  {item['class']}")
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    import os
    import warnings

    from rubiks_service.models.export import export_model

    loaded = _resolve_model(args, "export")
    if loaded is None:
        return 2
    frames, size = args.frames or loaded.segments, args.size or loaded.crop_size
    if frames != loaded.segments:
        print(f"rubiks export: the model is built for {loaded.segments} frames per clip, not {frames}", file=sys.stderr)
        return 2
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        print(f"rubiks export: output folder does not exist: {folder}", file=sys.stderr)
        return 2
    print(f"[export] {loaded.source} -> {args.out} ({args.format}, {frames}x3x{size}x{size}, batch dynamic)",
          file=sys.stderr, flush=True)
    with warnings.catch_warnings():  # the exporters' deprecation chatter is not the user's business
        warnings.simplefilter("ignore")
        summary = export_model(loaded.model, args.out, args.format, frames=frames, size=size)
    summary["model"] = loaded.source
    _emit(summary, args.json)
    return 0


def _ui(args: argparse.Namespace) -> int:
    import subprocess

    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, args.storage_path)
    server = uri if uri.startswith(("http://", "https://")) else f"http://{args.host}:{args.port}"
    landing = _experiment_landing(uri, server, args.experiment)
    if server == uri:  # an MLflow server already serves its UI: only say where to look
        print(landing)
        return 0
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI for {uri}: {landing} (Ctrl-C to stop)", flush=True)
    return subprocess.call(cmd)


def _experiment_landing(uri: str, server: str, name: str | None) -> str:
    """The training-runs view of experiment `name` (default: the most recently used one), else the UI root."""
    from rubiks_service.tracking.mlflow_store import experiment_url, make_client

    try:
        client = make_client(uri)
        if name:
            found = client.get_experiment_by_name(name)
            if found is not None:
                return experiment_url(server, found.experiment_id)
        else:
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                      order_by=["attributes.start_time DESC"], max_results=1)
            if runs:
                return experiment_url(server, runs[0].info.experiment_id)
    except Exception:  # noqa: BLE001 - an empty or unreachable store still gets the UI root
        pass
    return server


def _add_tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite under the storage path)")
    p.add_argument("--storage-path", default="runs", help="where runs and the default MLflow store live (default: runs)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="a checkpoint file (training or release format), runs:/<run_id>/model, "
                        "models:/<name>/<version> or models:/<name>@<alias>")
    p.add_argument("--size", type=int,
                   help="input crop size (default: the training config's; 224 for a release-format checkpoint)")
    _add_tracking_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rubiks", description="RubiksNet training service")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions and which compiled kernels are available")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    prof = sub.add_parser("profile", help="params, MACs (per clip) and optional latency of a model")
    prof.add_argument("model", help="rubiksnet-{tiny,small,medium,large,nano,micro}, tsm-r{18,34,50} or tsm-{nano,micro}")
    prof.add_argument("--num-classes", type=int, default=174)
    prof.add_argument("--frames", type=int, default=8)
    prof.add_argument("--size", type=int, default=224)
    prof.add_argument("--variant", choices=["rs", "rs-q", "rs-aq"], help="RubiksNet variant (default rs)")
    prof.add_argument("--convert", action="store_true", help="hard-max convert AQ shifts first (inference cost)")
    prof.add_argument("--latency", action="store_true",
                      help="also time the inference form (models.profile.measure_latency: batch 1, 2 threads)")
    prof.add_argument("--device", help="device for --latency (default: cuda if available)")
    prof.add_argument("--json", action="store_true", help="print JSON")
    prof.set_defaults(func=_profile)

    train = sub.add_parser("train", help="train a model with Ray Train (tracked in MLflow)")
    train.add_argument("config", help="training YAML (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    train.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local instance)")
    train.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite under storage_path)")
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=_train)

    sweep = sub.add_parser("sweep", help="a Ray Tune sweep of tracked training runs (tune_spaces/*.yaml)")
    sweep.add_argument("space", help="search-space YAML")
    sweep.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local instance)")
    sweep.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite under the storage path)")
    sweep.add_argument("--storage-path", help="override the base config's storage_path")
    sweep.add_argument("--verbose", type=int, default=1, help="Tune's console verbosity 0..3")
    sweep.add_argument("--json", action="store_true")
    sweep.set_defaults(func=_sweep)

    pareto = sub.add_parser("pareto", help="the accuracy-vs-cost Pareto frontier of a sweep")
    pareto.add_argument("--experiment", default="rubiks", help="MLflow experiment (its latest sweep is shown)")
    pareto.add_argument("--run", help="a sweep's parent run id (instead of the latest)")
    pareto.add_argument("--cost", choices=["gmacs", "mparams", "latency"], default="gmacs",
                        help="latency: the trials' measured CPU latency (models.profile.measure_latency)")
    _add_tracking_args(pareto)
    pareto.add_argument("--json", action="store_true")
    pareto.set_defaults(func=_pareto)

    ev = sub.add_parser("eval", help="evaluate a trained model (1-clip / 2-clip)")
    _add_model_args(ev)
    ev.add_argument("--data", required=True, help="manifest to evaluate on")
    ev.add_argument("--data-root", help="folder relative video paths are taken from")
    ev.add_argument("--protocol", action="append", choices=["1clip", "2clip"], help="default: the run's protocols")
    ev.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local instance)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_eval)

    pred = sub.add_parser("predict", help="classify video files with a trained model (top-k classes)")
    _add_model_args(pred)
    pred.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    pred.add_argument("--topk", type=int, default=5, help="classes to show per video (default 5)")
    pred.add_argument("--protocol", choices=["1clip", "2clip"], default="1clip",
                      help="evaluation views: 1clip (centre crop) or 2clip (2 clips x 3 crops, averaged)")
    pred.add_argument("--json", action="store_true")
    pred.set_defaults(func=_predict)

    exp = sub.add_parser("export", help="export a trained model to ONNX (standard operators) or pt2 (torch.export)")
    _add_model_args(exp)
    exp.add_argument("--format", choices=["onnx", "pt2"], required=True)
    exp.add_argument("--out", required=True, help="file to write")
    exp.add_argument("--frames", type=int, help="frames per clip (default: the model's)")
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(func=_export)

    ui = sub.add_parser("ui", help="the MLflow UI for the local store (127.0.0.1)")
    _add_tracking_args(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--experiment", help="land on this experiment's training runs (default: the latest used)")
    ui.set_defaults(func=_ui)

    from rubiks_service.queue.cli import add_parsers as add_queue_parsers

    add_queue_parsers(sub)

    data = sub.add_parser("data", help="datasets: synthesise, prepare manifests, inspect").add_subparsers(
        dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the built-in motion dataset (mp4 + manifests)")
    synth.add_argument("out_dir")
    synth.add_argument("--train-per-class", type=int, default=40)
    synth.add_argument("--val-per-class", type=int, default=10)
    synth.add_argument("--frames", type=int, default=16)
    synth.add_argument("--size", type=int, default=64)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--distractors", type=int, default=1, help="discs moving at random (default 1)")
    synth.add_argument("--noise", type=float, default=0.05, help="pixel noise std, 0..1 scale (default 0.05)")
    synth.add_argument("--motion", type=float, default=0.75,
                       help="fraction of the video the object moves in (default 0.75; 1 with the two above at 0: "
                            "the earlier, easy set)")
    synth.add_argument("--json", action="store_true")
    synth.set_defaults(func=_data_synth)
    prepare = data.add_parser("prepare", help="convert annotation files to a manifest (+ classes.txt)",
                              epilog="inputs: " + "; ".join(f"{k}: {v}" for k, v in PREPARE_INPUTS.items()))
    prepare.add_argument("format", choices=sorted(PREPARE_INPUTS))
    prepare.add_argument("inputs", nargs="+")
    prepare.add_argument("--out", required=True, help="manifest to write (.csv or .parquet)")
    prepare.add_argument("--split", type=int, default=1, help="hmdb51 split number")
    prepare.add_argument("--subset", choices=["train", "test"], default="train", help="hmdb51 subset")
    prepare.add_argument("--json", action="store_true")
    prepare.set_defaults(func=_data_prepare)
    insp = data.add_parser("inspect", help="counts per class and unreadable videos of a manifest")
    insp.add_argument("manifest")
    insp.add_argument("--data-root")
    insp.add_argument("--classes", help="class list file (default: classes.txt beside the manifest)")
    insp.add_argument("--no-check", action="store_true", help="do not open the videos")
    insp.add_argument("--json", action="store_true")
    insp.set_defaults(func=_data_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
