"""Does starting from a pretrained model help on new classes with few clips? Pretrain, then fine-tune
vs train from scratch, over seeds, on the built-in motion data.

    data:      `rubiks data synth` (the easy set: one object, no noise, motion over the whole video)
    pretrain:  two class pairs (move_up/move_down, approach/recede), every training clip
    target:    the held-out pairs (move_left/move_right, fade_in/fade_out), SHOTS training clips a class
               drawn per seed; validation on all their validation clips
    per seed:  scratch (random weights) and fine-tune (model.init_from: the pretrain run's runs:/ model),
               the same recipe and the same clips otherwise

Every run is a tracked run (`run_tracked_training`, as `rubiks train` does) in one Ray session. The
result (final 1-clip top-1 per run, each arm's mean ± 95% t-interval and the paired difference's) goes
to OUT/results.json and, with --out, to a committed copy.

    python scripts/finetune_experiment.py runs/ft-exp --seeds 5 --out bench/results/finetune_motion.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time

PRETRAIN_CLASSES = ("move_up", "move_down", "approach", "recede")
TARGET_CLASSES = ("move_left", "move_right", "fade_in", "fade_out")


def write_subset(data: str, out: str, classes: tuple[str, ...], shots: int | None, seed: int) -> dict:
    """Manifests of `classes` only (train: `shots` clips a class drawn with `seed`, or all) in `out`."""
    os.makedirs(out, exist_ok=True)
    paths = {}
    for split in ("train", "val"):
        with open(os.path.join(data, f"{split}.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r["label"] in classes]
        if split == "train" and shots is not None:
            rng = random.Random(seed)
            rows = [r for c in classes for r in rng.sample([r for r in rows if r["label"] == c], shots)]
        paths[split] = os.path.join(out, f"{split}.csv")
        with open(paths[split], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("\n".join(classes) + "\n")
    return paths


def config(name: str, paths: dict, data_root: str, storage: str, seed: int, epochs: int, crop: int,
           segments: int, init_from: str | None = None):
    from rubiks_service.data.manifest import read_manifest
    from rubiks_service.train.config import validate

    classes = read_manifest(paths["train"], data_root=data_root).classes
    # a horizontal flip turns move_left into move_right: the flipped clip takes its pair's label
    pairs = (("move_left", "move_right"), ("move_right", "move_left"))
    flip_pairs = {classes.index(a): classes.index(b) for a, b in pairs if a in classes and b in classes}

    model = {"name": "rubiksnet-nano"}
    if init_from:
        model["init_from"] = init_from
    return validate({
        "name": name, "seed": seed, "model": model,
        "optim": {"optimizer": "adamw", "lr": 0.003, "epochs": epochs, "shift_lr_mult": 1.0},
        "data": {"train_manifest": paths["train"], "val_manifest": paths["val"], "data_root": data_root,
                 "segments": segments, "crop_size": crop, "batch_size": 8, "cache_frames": True, "decode_cpus": 0.2,
                 "flip_pairs": flip_pairs},
        "scaling": {"num_workers": 1, "cpus_per_worker": 1.0},
        "storage_path": storage, "experiment": "finetune-motion", "eval_protocols": ["1clip"], "log_every": 1000,
    }, name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--shots", type=int, default=5, help="training clips a target class")
    p.add_argument("--pretrain-epochs", type=int, default=24)
    p.add_argument("--epochs", type=int, default=15, help="epochs of every target run (scratch and fine-tune)")
    p.add_argument("--crop", type=int, default=32)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--out-json", dest="out_json", help="also write the result here (bench/results/...)")
    args = p.parse_args(argv)

    import ray

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.bench_shift_cpu import _cpu_model

    from rubiks_service.data.synth import SynthConfig, generate
    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri
    from rubiks_service.tracking.replicates import mean_ci95
    from rubiks_service.tracking.tracked_training import run_tracked_training
    from rubiks_service.train import metric_names as names

    out = os.path.abspath(args.out)
    data, storage = os.path.join(out, "data"), os.path.join(out, "runs")
    if not os.path.isfile(os.path.join(data, "val.csv")):
        generate(data, SynthConfig.easy(train_per_class=60, val_per_class=20))
    uri = resolve_tracking_uri(None, storage)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = time.time()
    results_path = os.path.join(out, "results.json")
    result = {"setup": {"cpu": _cpu_model(), "cores": os.cpu_count(), "load_before": os.getloadavg(),
                        "pretrain_classes": PRETRAIN_CLASSES, "target_classes": TARGET_CLASSES,
                        "model": "rubiksnet-nano", "shots": args.shots, "epochs": args.epochs,
                        "pretrain_epochs": args.pretrain_epochs, "crop": args.crop, "segments": args.segments,
                        "data": "rubiks data synth, easy set, 60 train / 20 val clips a class"},
              "runs": []}

    pre_paths = write_subset(data, os.path.join(out, "pretrain"), PRETRAIN_CLASSES, None, 0)
    pre = run_tracked_training(config("pretrain", pre_paths, data, storage, 0, args.pretrain_epochs, args.crop,
                                      args.segments), uri)
    result["pretrain"] = {"run_id": pre["run_id"], "model_uri": pre["model_uri"], names.ONE_CLIP_TOP1: pre[names.ONE_CLIP_TOP1]}
    print(f"[experiment] pretrain 1clip top-1 {pre[names.ONE_CLIP_TOP1]:.3f} ({pre['model_uri']})", flush=True)
    for seed in range(args.seeds):
        paths = write_subset(data, os.path.join(out, f"target-{seed}"), TARGET_CLASSES, args.shots, seed)
        for arm, init in (("scratch", None), ("finetune", pre["model_uri"])):
            summary = run_tracked_training(config(f"{arm}-{seed}", paths, data, storage, seed, args.epochs, args.crop,
                                                  args.segments, init_from=init), uri)
            result["runs"].append({"arm": arm, "seed": seed, "run_id": summary["run_id"],
                                   names.ONE_CLIP_TOP1: summary[names.ONE_CLIP_TOP1]})
            print(f"[experiment] seed {seed} {arm}: 1clip top-1 {summary[names.ONE_CLIP_TOP1]:.3f}", flush=True)
        result["summary"] = summarise(result["runs"], mean_ci95, names.ONE_CLIP_TOP1)
        result["setup"]["minutes"] = (time.time() - started) / 60
        result["setup"]["load_after"] = os.getloadavg()
        with open(results_path, "w") as f:  # after every seed: a cut-short experiment keeps what it has
            json.dump(result, f, indent=2)
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result["summary"], indent=2))
    return 0


def summarise(runs: list[dict], mean_ci95, metric: str) -> dict:
    """Each arm's mean ± 95% t-interval, and the paired (same seed, same clips) fine-tune - scratch difference."""
    by = {arm: {r["seed"]: r[metric] for r in runs if r["arm"] == arm} for arm in ("scratch", "finetune")}
    seeds = sorted(set(by["scratch"]) & set(by["finetune"]))
    out = {}
    for name, values in (("scratch", [by["scratch"][s] for s in seeds]), ("finetune", [by["finetune"][s] for s in seeds]),
                         ("difference", [by["finetune"][s] - by["scratch"][s] for s in seeds])):
        mean, sd, ci = mean_ci95(values)
        out[name] = {"mean": mean, "sd": sd, "ci95": ci, "n": len(values), "values": values}
    return out


if __name__ == "__main__":
    sys.exit(main())
