"""`rubiks profile MODEL`: params, MACs per clip by stage, and optionally the measured latency."""
from __future__ import annotations

import argparse

from ._common import LazyChoices, add_json, print_json, user_error


def _variants():
    from rubiks_service.models import VARIANTS

    return VARIANTS


def add_parsers(sub) -> None:
    prof = sub.add_parser("profile", help="params, MACs (per clip) and optional latency of a model")
    prof.add_argument("model", help="rubiksnet-<tier> or tsm-<size> (an unknown name lists them all)")
    prof.add_argument("--num-classes", type=int, default=174)
    prof.add_argument("--frames", type=int, default=8)
    prof.add_argument("--size", type=int, default=224)
    prof.add_argument("--variant", choices=LazyChoices(_variants), metavar="VARIANT",
                      help="RubiksNet variant: %(choices)s (default rs)")
    prof.add_argument("--convert", action="store_true", help="hard-max convert AQ shifts first (inference cost)")
    prof.add_argument("--latency", action="store_true",
                      help="also time the inference form (models.profile.measure_latency: batch 1, 2 threads)")
    prof.add_argument("--device", help="device for --latency (default: cuda if available)")
    add_json(prof)
    prof.set_defaults(func=_profile)


def _profile(args: argparse.Namespace) -> int:
    import torch

    from rubiks_service.models import build_model
    from rubiks_service.models.profile import profile_model

    for flag, value, (low, high) in (("--size", args.size, (8, 1024)), ("--frames", args.frames, (1, 128)),
                                     ("--num-classes", args.num_classes, (1, 100_000))):
        if not low <= value <= high:
            return user_error("profile", f"{flag} must be {low}..{high}, got {value}")
    options = {"variant": args.variant} if args.variant else {}
    try:
        model = build_model(args.model, num_classes=args.num_classes, num_frames=args.frames, **options)
    except (ValueError, TypeError) as exc:
        return user_error("profile", exc)
    if args.convert:
        from rubiks_service.ops.attention_shift import convert_attention_shifts

        convert_attention_shifts(model)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    prof = profile_model(model, name=args.model, frames=args.frames, size=args.size, latency=args.latency, device=device)
    if args.json:
        print_json(prof.to_dict())
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
