"""An RS (interpolated 3D shift) RubiksNet's weights in the RS-AQ layout of the same tier: the way the
paper trains RS-AQ, fine-tuned from a trained RS model rather than from scratch.

The two variants place their shifts differently (models/rubiksnet.py): RS shifts after the first 1x1
(`conv2.weight`, then `as3.rubiks3d.shift` rows [T, H, W]); RS-AQ shifts in time before it (attention
`conv2.0.weight`, 1x1 `conv2.1.weight`) and in space after it (`as3.shift` rows [H, W]). So the 1x1
moves under its RS-AQ key, the spatial rows of every 3D shift become the 2D shift, and the temporal row
has no counterpart (RS-AQ's attention is over the block's input channels, RS's temporal shift over its
output): the attention starts from its own initialisation and learns the temporal shifts anew.
"""
from __future__ import annotations

import torch

RS_CONV = ".conv2.weight"
RS_SHIFT = ".as3.rubiks3d.shift"
AQ_ATTENTION = ".conv2.0.weight"
AQ_CONV = ".conv2.1.weight"
AQ_SHIFT = ".as3.shift"


def is_rs_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict holds RS blocks (learnable 3D shifts)."""
    return any(key.endswith(RS_SHIFT) for key in state)


def is_aq_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict holds RS-AQ blocks (temporal attention before the first 1x1)."""
    return any(key.endswith(AQ_ATTENTION) for key in state)


def aq_state_from_rs(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`state` with every RS block's 1x1 and spatial shift under the RS-AQ keys; (state, the RS-AQ keys
    written). Other keys (stem, BN, second 1x1, shortcut, head) are the same in both layouts."""
    out, mapped = {}, []
    for key, value in state.items():
        if key.endswith(RS_CONV) and value.dim() == 4:
            key = key[: -len(RS_CONV)] + AQ_CONV
            mapped.append(key)
        elif key.endswith(RS_SHIFT) and value.dim() == 2 and value.shape[0] == 3:
            key, value = key[: -len(RS_SHIFT)] + AQ_SHIFT, value[1:].clone()
            mapped.append(key)
        out[key] = value
    return out, mapped
