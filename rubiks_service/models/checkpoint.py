"""Checkpoints in the reference release's format.

A checkpoint is a dict with `tier`, `num_classes`, `num_frames`, `variant` and
`model` (the state dict, with the release's key names), so the published
weights load with strict=True. Our own checkpoints add keys beside those
(`optimizer`, `epoch`, `config`, ...) without changing them.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any

import torch

from rubiks_service.redact import UserError

from .rubiksnet import TIERS, RubiksNet, rubiksnet

# the release names its variants after its modules; ours are the paper's
VARIANT_ALIASES = {"rubiks3d": "rs", "rubiks3d-q": "rs-q", "rubiks3d-aq": "rs-aq"}
RELEASE_KEYS = ("tier", "num_classes", "num_frames", "variant", "model")
RELEASE_BOUNDS = {"num_classes": (1, 100_000), "num_frames": (1, 128)}


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is not in the expected format."""


def checkpoint_dict(model: RubiksNet, **extra: Any) -> dict[str, Any]:
    if not isinstance(model, RubiksNet) or model.tier is None:
        raise TypeError("checkpoint_dict needs a RubiksNet built by a tier (rubiksnet('tiny'), ...)")
    clashes = set(extra) & set(RELEASE_KEYS)
    if clashes:
        raise ValueError(f"extra checkpoint keys clash with the release format: {sorted(clashes)}")
    return {
        "tier": model.tier,
        "num_classes": model.cfg.num_classes,
        "num_frames": model.cfg.num_frames,
        "variant": model.cfg.variant,
        "model": model.state_dict(),
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, model: RubiksNet, **extra: Any) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a checkpoint."""
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(checkpoint_dict(model, **extra), tmp)
    os.replace(tmp, path)


def read_checkpoint_file(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)`: tensors and plain data only, the one way this service reads
    checkpoint and model files. A file that needs code to unpickle (a crafted "checkpoint") is
    refused, with one line naming what it asked for; nothing in it runs."""
    where = os.fspath(path)
    if not os.path.exists(where):
        raise CheckpointError(f"checkpoint not found: {where}")
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickle protocols: our error says it all
            warnings.simplefilter("ignore")
            return torch.load(where, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        wanted = re.search(r"GLOBAL (\S+)", str(exc))
        if wanted:
            raise CheckpointError(f"refused to load {where!r}: it asks to import {wanted.group(1)}; checkpoints are "
                                  f"read with weights_only=True (tensors and plain data) and never run code") from None
        detail = next((ln.strip() for ln in str(exc).splitlines() if "Unsupported" in ln), "unreadable pickle")
        raise CheckpointError(f"cannot read checkpoint {where!r}: not tensors and plain data ({detail[:200]})") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"cannot read checkpoint {where!r}: {first[:300]}") from None


def load_release_checkpoint(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu", strict: bool = True, **overrides: Any
) -> tuple[RubiksNet, dict[str, Any]]:
    """A release-format checkpoint file -> (the RubiksNet it describes, with its weights; the checkpoint).
    Its counterpart for our training checkpoints (config and classes inside) is
    `train.trainer.load_trained_model`; both read with `read_checkpoint_file`."""
    ckpt = read_checkpoint_file(path, map_location=map_location)
    return model_from_release(ckpt, os.fspath(path), strict=strict, **overrides), ckpt


def model_from_release(ckpt: Any, source: str, *, strict: bool = True, **overrides: Any) -> RubiksNet:
    """The contents of a release-format checkpoint (already read) -> the model with its weights."""
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in RELEASE_KEYS):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{source!r} is not a RubiksNet checkpoint: needs keys {RELEASE_KEYS}, found {found}")
    if not isinstance(ckpt["tier"], str) or ckpt["tier"] not in TIERS:
        raise CheckpointError(f"{source!r}: unknown tier {str(ckpt['tier'])[:40]!r}")
    for key, (low, high) in RELEASE_BOUNDS.items():  # a crafted size would build a huge model before failing
        if isinstance(ckpt[key], bool) or not isinstance(ckpt[key], int) or not low <= ckpt[key] <= high:
            raise CheckpointError(f"{source!r}: {key} {str(ckpt[key])[:40]!r} is not a whole number in {low}..{high}")
    if not isinstance(ckpt["model"], dict):
        raise CheckpointError(f"{source!r}: `model` must be a state dict, found {type(ckpt['model']).__name__}")
    variant = VARIANT_ALIASES.get(ckpt["variant"], ckpt["variant"])
    model = rubiksnet(
        ckpt["tier"], variant=variant, num_classes=int(ckpt["num_classes"]), num_frames=int(ckpt["num_frames"]), **overrides
    )
    model.load_state_dict(ckpt["model"], strict=strict)
    return model
