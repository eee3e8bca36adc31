"""RS-AQ's gap to RS, diagnosed: the same model, data, recipe and seeds, one factor changed at a time.

Trains rubiksnet-nano on the built-in motion data in this process (frames decoded once, clips sampled
per epoch with the service's own ClipSampler and normalisation; no Ray, so a variant costs only its
training) and reports 1-clip top-1 over seeds with 95% t-intervals and Welch tests against RS:

    rs             interpolated 3D shift (the reference point)
    aq-global      RS-AQ as it was: logits U(1, 1.05), one std over the whole layer (sharp softmax from
                   step 0, its scale drifting with every update)
    aq-release     RS-AQ as the official release and now the service: logits U(0, 1), standardised per
                   channel over its 2k+1 candidates
    aq-release-nobudget   the same without the budget loss (weight 0): what the budget costs
    aq-attn-lr10   the release form with its attention logits at 10x the learning rate (they start flat
                   and must sharpen within the annealing)
    aq-from-rs     the release form started from the RS model of the same seed trained just before it
                   (every weight but the shifts and attention; the way a user would fine-tune RS into RS-AQ
                   with `model.init_from`), then trained with the same recipe

    python bench/aq_diagnosis.py runs/motion-data --seeds 0 1 2 --epochs 8 --out bench/results/aq-....json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rubiks_service.data.clip_spec import ClipMode, ClipSpec  # noqa: E402
from rubiks_service.data.decoders import ClipSampler  # noqa: E402
from rubiks_service.data.manifest import read_manifest  # noqa: E402
from rubiks_service.data.transforms import normalize  # noqa: E402
from rubiks_service.data.video import num_frames, read_frames  # noqa: E402
from rubiks_service.models import build_model  # noqa: E402
from rubiks_service.models.param_groups import parameter_groups  # noqa: E402
from rubiks_service.ops import attention_shift as aq  # noqa: E402
from rubiks_service.tracking.replicates import compare, group_points, json_ready  # noqa: E402

VARIANTS = ("rs", "aq-global", "aq-release", "aq-release-nobudget", "aq-attn-lr10", "aq-from-rs")


def _global_std_attention(self):  # the earlier form, for the comparison only
    scale = self.weight.std().clamp_min(1e-8) * self.T.clamp_min(1e-8)
    return torch.softmax(self.weight / scale, dim=1)


def load_split(root: str, split: str):
    manifest = read_manifest(os.path.join(root, f"{split}.csv"), data_root=root)
    frames, labels, paths = [], [], []
    for record in manifest.records:
        count = record.num_frames or num_frames(record.path)
        frames.append(read_frames(record.path, np.arange(count)))
        labels.append(record.label)
        paths.append(record.listed_path or record.path)
    return frames, np.asarray(labels), paths, manifest.classes


def batches(data, spec, seed, epoch, batch_size, shuffle):
    frames, labels, paths, _ = data
    order = np.random.default_rng([seed, epoch]).permutation(len(frames)) if shuffle else np.arange(len(frames))
    sampler = ClipSampler(spec, seed=seed, epoch=epoch)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        out = sampler({"frames": [frames[j] for j in idx], "label": labels[idx], "path": [paths[j] for j in idx],
                       "valid": np.ones(len(idx), bool)})
        yield normalize(out["clip"]), out["label"]


def train_one(variant, seed, train, val, args, start_from=None):
    """`start_from`: a state dict whose tensors of matching name and shape are loaded before training."""
    torch.manual_seed(seed)
    model_variant = "rs" if variant == "rs" else "rs-aq"
    variant_kw = {} if args.model.startswith("tsm") else {"variant": model_variant, "shift_init": args.shift_init}
    model = build_model(args.model, num_classes=len(train[3]), num_frames=args.segments, **variant_kw)
    if start_from is not None:
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in start_from.items() if k in own and own[k].shape == v.shape},
                              strict=False)
    layers = aq.attention_shift_layers(model)
    if variant == "aq-global":
        for layer in layers:
            with torch.no_grad():
                layer.weight.uniform_(1.0, 1.05)
            layer.attention = _global_std_attention.__get__(layer)
    groups = parameter_groups(model, lr=args.lr, weight_decay=1e-4,
                              shift_lr_mult=10.0 if variant == "aq-attn-lr10" else 1.0)
    opt = torch.optim.AdamW(groups, lr=args.lr)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    train_spec = ClipSpec(segments=args.segments, crop_size=args.crop, mode=ClipMode.TRAIN, flip=True,
                          flip_pairs={0: 1, 1: 0})
    val_spec = ClipSpec(segments=args.segments, crop_size=args.crop, mode=ClipMode.ONE_CLIP)
    budget_weight = 0.0 if variant.endswith("nobudget") else args.budget_weight
    curve = []
    for epoch in range(args.epochs):
        factor = (epoch + 1) / (args.warmup + 1) if epoch < args.warmup else \
            0.5 * (1 + math.cos(math.pi * (epoch - args.warmup) / (args.epochs - args.warmup)))
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        aq.set_temperature(model, aq.exponential_temperature(epoch, args.epochs, args.t_start, args.t_end))
        model.train()
        for clips, labels in batches(train, train_spec, seed, epoch, args.batch, shuffle=True):
            logits = model(clips[:, 0])
            loss = F.cross_entropy(logits, labels)
            if layers and budget_weight > 0:
                loss = loss + budget_weight * aq.budget_loss(layers, args.budget)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        curve.append(evaluate(model, val, val_spec, args.batch))
    aq.convert_attention_shifts(model)  # the served form
    final = evaluate(model, val, val_spec, args.batch)
    budget = aq.realised_budget(layers) if layers else None
    return {"final": final, "curve": curve, "realised_budget": budget, "state": model.state_dict()}


@torch.no_grad()
def evaluate(model, data, spec, batch_size):
    model.eval()
    right = total = 0
    for clips, labels in batches(data, spec, 0, 0, batch_size, shuffle=False):
        logits = model(clips.flatten(0, 1)).view(clips.shape[0], clips.shape[1], -1).mean(1)
        right += int((logits.argmax(1) == labels).sum())
        total += len(labels)
    return right / total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a `rubiks data synth` folder")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--model", default="rubiksnet-nano", help="the tier (a tsm-* model with variant rs: the TSM baseline)")
    p.add_argument("--shift-init", default="uniform", help="RubiksNet's model.shift_init (uniform, tsm, ...)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--budget-weight", type=float, default=0.1)
    p.add_argument("--t-start", type=float, default=2.0, help="RS-AQ temperature at the start (aq.temperature_start)")
    p.add_argument("--t-end", type=float, default=1e-3, help="... and at the end (aq.temperature_end)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the JSON here too")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="no training: summarise the trials of earlier runs' JSON files (variants run in parallel)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    trials = []
    if args.merge:
        for path in args.merge:
            trials += json.load(open(path))["trials"]
        args.variants = sorted({t["label"] for t in trials}, key=VARIANTS.index)
    else:
        train, val = load_split(args.data, "train"), load_split(args.data, "val")
        print(f"decoded {len(train[0])} + {len(val[0])} videos in {time.time() - start:.0f} s", file=sys.stderr)
    for seed in [] if args.merge else args.seeds:
        rs_state = None
        for variant in args.variants:
            t0 = time.time()
            if variant == "aq-from-rs" and rs_state is None:  # its RS start, when rs is not among the variants
                rs_state = train_one("rs", seed, train, val, args)["state"]
            result = train_one(variant, seed, train, val, args,
                               start_from=rs_state if variant == "aq-from-rs" else None)
            if variant == "rs":
                rs_state = result["state"]
            print(f"{variant} seed {seed}: 1clip {result['final']:.3f} curve {[round(c, 3) for c in result['curve']]} "
                  f"budget {result['realised_budget']} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
            trials.append({"label": variant, "point": variant, "seed": str(seed), "kind": "rubiksnet",
                           "model": args.model, "1clip_top1": result["final"], "run_id": f"{variant}-{seed}",
                           "curve": result["curve"], "realised_budget": result["realised_budget"]})
    groups = {g["label"]: g for g in group_points(trials)}
    comparisons = [compare(groups[v], groups["rs"]).as_dict() for v in args.variants if v != "rs" and "rs" in groups]
    if "aq-global" in groups and "aq-release" in groups:
        comparisons.append(compare(groups["aq-release"], groups["aq-global"]).as_dict())
    settings = vars(args)
    if args.merge:  # the runs' own settings, not this summary's defaults
        settings = {**next((json.load(open(p)).get("settings") for p in args.merge
                            if json.load(open(p)).get("settings")), settings), "merged": args.merge}
    report = {"settings": settings, "cpu": platform.processor() or platform.machine(),
              "load_average": os.getloadavg(), "seconds": time.time() - start,
              "groups": list(groups.values()), "comparisons": comparisons, "trials": trials}
    text = json.dumps(json_ready(report), indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    for g in groups.values():
        print(f"{g['label']:>22}: {g['1clip_top1_mean']:.3f} ± {g['1clip_top1_ci95']:.3f} (n={g['n']})", file=sys.stderr)
    for c in comparisons:
        print(c["text"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
