"""`rubiks info`: versions and which compiled kernels this machine has."""
from __future__ import annotations

import argparse
import platform

from ._common import add_json, emit


def add_parsers(sub) -> None:
    info = sub.add_parser("info", help="versions and which compiled kernels are available")
    add_json(info)
    info.set_defaults(func=_info)


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
    emit(info, args.json, width=15)
    return 0
