"""`rubiks data synth | prepare | inspect | prepare-frames`: the built-in motion dataset, manifests from
annotation files, what a manifest holds, and its videos decoded once into frame shards."""
from __future__ import annotations

import argparse

from ._common import add_address, add_json, emit, init_ray, print_json, user_error

# what each annotation format's adapter reads (data.adapters), for errors and the help
PREPARE_INPUTS = {
    "ssv2": "LABELS_JSON SPLIT_JSON",
    "ssv1": "LIST_FILE [CATEGORY_FILE]",
    "tsm-list": "LIST_FILE",
    "ucf101": "CLASS_INDEX SPLIT_FILE",
    "hmdb51": "SPLIT_DIR (with --split, --subset)",
    "kinetics": "CSV_FILE",
}


def add_parsers(sub) -> None:
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
    add_json(synth)
    synth.set_defaults(func=_data_synth)
    prepare = data.add_parser("prepare", help="convert annotation files to a manifest (+ classes.txt)",
                              epilog="inputs: " + "; ".join(f"{k}: {v}" for k, v in PREPARE_INPUTS.items()))
    prepare.add_argument("format", choices=sorted(PREPARE_INPUTS))
    prepare.add_argument("inputs", nargs="+")
    prepare.add_argument("--out", required=True, help="manifest to write (.csv or .parquet)")
    prepare.add_argument("--split", type=int, default=1, help="hmdb51 split number")
    prepare.add_argument("--subset", choices=["train", "test"], default="train", help="hmdb51 subset")
    add_json(prepare)
    prepare.set_defaults(func=_data_prepare)
    insp = data.add_parser("inspect", help="counts per class and unreadable videos of a manifest")
    insp.add_argument("manifest")
    insp.add_argument("--data-root")
    insp.add_argument("--classes", help="class list file (default: classes.txt beside the manifest)")
    insp.add_argument("--no-check", action="store_true", help="do not open the videos")
    add_json(insp)
    insp.set_defaults(func=_data_inspect)
    frames = data.add_parser("prepare-frames", help="decode a manifest's videos once into Parquet frame shards "
                             "(a folder or s3:// prefix) that training reads with data.train_frames / val_frames")
    frames.add_argument("manifest")
    frames.add_argument("out", help="folder or s3://bucket/prefix to write (must not hold shards yet)")
    frames.add_argument("--crop-size", type=int, default=112,
                        help="the runs' data.crop_size: frames are resized to the short side it needs (default 112)")
    frames.add_argument("--short-side", type=int, help="resize frames to this short side instead")
    frames.add_argument("--data-root")
    frames.add_argument("--classes", help="class list file (default: classes.txt beside the manifest)")
    frames.add_argument("--videos-per-shard", type=int, default=16, help="videos per Parquet file (default 16)")
    add_address(frames)
    add_json(frames)
    frames.set_defaults(func=_data_prepare_frames)


def _data_synth(args: argparse.Namespace) -> int:
    from rubiks_service.data.synth import SynthConfig, generate

    try:
        cfg = SynthConfig(train_per_class=args.train_per_class, val_per_class=args.val_per_class,
                          num_frames=args.frames, size=args.size, seed=args.seed, distractors=args.distractors,
                          noise=args.noise, motion=args.motion)
    except ValueError as exc:
        return user_error("data synth", exc)
    paths = generate(args.out_dir, cfg, progress=not args.json)
    emit(paths, args.json, width=8)
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    import os

    from rubiks_service.data.adapters import ADAPTERS
    from rubiks_service.data.manifest import ManifestError, write_classes, write_manifest

    adapter = ADAPTERS[args.format]
    kwargs = {"split": args.split, "subset": args.subset} if args.format == "hmdb51" else {}
    try:
        rows, classes = adapter(*args.inputs, **kwargs)
    except (ManifestError, OSError, TypeError, ValueError, KeyError) as exc:
        return user_error(f"data prepare {args.format}", f"{exc} (inputs: {PREPARE_INPUTS[args.format]})")
    write_manifest(rows, args.out)
    classes_path = write_classes(classes, os.path.join(os.path.dirname(os.path.abspath(args.out)), "classes.txt"))
    summary = {"manifest": args.out, "classes_file": classes_path, "rows": len(rows), "classes": len(classes)}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {len(rows)} rows, {len(classes)} classes -> {args.out}")
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from rubiks_service.data.inspect import inspect_manifest
    from rubiks_service.data.manifest import ManifestError

    try:
        report = inspect_manifest(args.manifest, data_root=args.data_root, classes=args.classes,
                                  check_videos=not args.no_check, progress=not args.json)
    except ManifestError as exc:
        return user_error("data inspect", exc)
    if args.json:
        print_json(report.to_dict())
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


def _data_prepare_frames(args: argparse.Namespace) -> int:
    from rubiks_service.data.clip_spec import ClipSpec
    from rubiks_service.data.frame_shards import FramesError, prepare_frames
    from rubiks_service.data.manifest import ManifestError
    from rubiks_service.storage import StorageError

    try:
        short_side = args.short_side or ClipSpec(crop_size=args.crop_size).decode_short_side
        if short_side < 8 or args.videos_per_shard < 1:
            raise ValueError("--short-side must be >= 8 and --videos-per-shard >= 1")
        init_ray(args.address)
        summary = prepare_frames(args.manifest, args.out, short_side=short_side, data_root=args.data_root,
                                 classes=args.classes, videos_per_shard=args.videos_per_shard)
    except (FramesError, ManifestError, StorageError, ValueError) as exc:
        return user_error("data prepare-frames", exc)
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['videos']} videos ({summary['frames']} frames at short side {short_side}) in "
              f"{summary['shards']} shards -> {summary['out']} in {summary['seconds']} s")
        for path in summary["unreadable"]:
            print(f"  unreadable: {path}")
    return 1 if summary["unreadable"] else 0
