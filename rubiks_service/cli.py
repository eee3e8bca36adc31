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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rubiks", description="RubiksNet training service")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions and which compiled kernels are available")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
