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
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>15}: {value}")
    return 0


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
    if prof.latency_ms is not None:
        print(f"  latency           {prof.latency_ms:>11.2f} ms  ({prof.device}, batch 1)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rubiks", description="RubiksNet training service")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions and which compiled kernels are available")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    prof = sub.add_parser("profile", help="params, MACs (per clip) and optional latency of a model")
    prof.add_argument("model", help="rubiksnet-{tiny,small,medium,large} or tsm-r{18,34,50}")
    prof.add_argument("--num-classes", type=int, default=174)
    prof.add_argument("--frames", type=int, default=8)
    prof.add_argument("--size", type=int, default=224)
    prof.add_argument("--variant", choices=["rs", "rs-q", "rs-aq"], help="RubiksNet variant (default rs)")
    prof.add_argument("--convert", action="store_true", help="hard-max convert AQ shifts first (inference cost)")
    prof.add_argument("--latency", action="store_true", help="also time the forward pass (batch 1)")
    prof.add_argument("--device", help="device for --latency (default: cuda if available)")
    prof.add_argument("--json", action="store_true", help="print JSON")
    prof.set_defaults(func=_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
