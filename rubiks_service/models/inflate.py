"""The 2D counterpart of a RubiksNet tier, and its inflation into the 3D model.

The 2D model is the tier with `temporal_shift=False`: the same blocks, each shift a 2D spatial shift
(`RubiksShift2d`, key `as3.spatial.shift`, rows [H, W]) applied to every frame on its own. Trained on
single frames (`num_frames=1`, a training config's `data.segments: 1`) it is an image classifier.

Inflation (the paper: "we initialize the spatial components of the 3D RubiksShift layers with the
learned 2D shift patterns") copies every convolution, BN and the head as they are, and turns each 2D
shift into a 3D one (`as3.rubiks3d.shift`, rows [T, H, W]) with `RubiksShift3d.from_2d`: spatial rows
copied, the temporal row initialised by a rule (zeros, tsm, uniform). With the temporal row at zero the
3D model computes, frame by frame, what the 2D model does.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from rubiks_service.ops import RubiksShift2d, RubiksShift3d

from .rubiksnet import RubiksNet, rubiksnet

SHIFT_2D_SUFFIX = ".as3.spatial.shift"  # a per-frame (2D) block's shift
SHIFT_3D_SUFFIX = ".as3.rubiks3d.shift"  # the same block's 3D shift
TEMPORAL_INITS = ("zeros", "tsm", "uniform")  # rules for the temporal row of an inflated shift


def rubiksnet2d(tier: str, **overrides) -> RubiksNet:
    """The image model of a tier: 2D shifts, one frame per input."""
    return rubiksnet(tier, **{"num_frames": 1, **overrides, "temporal_shift": False})


def is_2d_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict holds 2D (per-frame) RubiksNet shifts."""
    return any(key.endswith(SHIFT_2D_SUFFIX) for key in state)


def inflate_shift(shift_2d: torch.Tensor, temporal_init: str = "zeros") -> torch.Tensor:
    """A (2, C) spatial shift -> the (3, C) shift of the inflated layer (`RubiksShift3d.from_2d`'s rule)."""
    if temporal_init not in TEMPORAL_INITS:
        raise ValueError(f"unknown temporal init {temporal_init!r}; choose one of {TEMPORAL_INITS}")
    layer = RubiksShift2d(shift_2d.shape[1], init="zeros")
    with torch.no_grad():
        layer.shift.copy_(shift_2d)
    return RubiksShift3d.from_2d(layer, temporal_init).shift.detach().to(shift_2d.dtype)


def inflate_state_dict(state: dict[str, torch.Tensor], temporal_init: str = "zeros"
                       ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A 2D RubiksNet state dict with every 2D shift inflated under its 3D key; (state, inflated 3D keys)."""
    out, inflated = {}, []
    for key, value in state.items():
        if key.endswith(SHIFT_2D_SUFFIX) and value.dim() == 2 and value.shape[0] == 2:
            key = key[: -len(SHIFT_2D_SUFFIX)] + SHIFT_3D_SUFFIX
            value = inflate_shift(value, temporal_init)
            inflated.append(key)
        out[key] = value
    return out, inflated


def inflate_model(model_2d: RubiksNet, num_frames: int, temporal_init: str = "zeros", **overrides) -> RubiksNet:
    """The 3D model of `model_2d`'s tier at `num_frames`, its weights inflated from the 2D model's."""
    if model_2d.cfg.temporal_shift or model_2d.cfg.variant == "rs-aq":
        raise ValueError("inflate_model needs a 2D RubiksNet (temporal_shift=False, variant rs or rs-q)")
    cfg = replace(model_2d.cfg, num_frames=num_frames, temporal_shift=True, **overrides)
    model = RubiksNet(cfg, tier=model_2d.tier)
    state, _ = inflate_state_dict(model_2d.state_dict(), temporal_init)
    model.load_state_dict(state)
    return model.to(next(model_2d.parameters()).device)
