"""Scaled gradient normalisation of the shift parameters (RubiksNet paper, Eq. 9/10).

Per channel c the shift gradient g = (g_T, g_H, g_W) is replaced by
    (lambda * g_T, g_H, g_W) / ||(lambda * g_T, g_H, g_W)||_2
so every channel's shift moves at the same rate whatever the activation scale,
and lambda sets how fast time moves relative to space. lambda < 0 selects the
temporal-only sign update: (sign(g_T), 0, 0). A channel with a zero gradient
keeps a zero gradient. For 2D shifts (rows [H, W]) lambda does not apply.
"""
from __future__ import annotations

import torch

_EPS = 1e-12


def normalize_shift_grad(grad: torch.Tensor, temporal_factor: float = 1.0) -> torch.Tensor:
    """Normalise a (3, C) [T, H, W] or (2, C) [H, W] shift gradient channel-wise."""
    if grad.dim() != 2 or grad.shape[0] not in (2, 3):
        raise ValueError(f"shift gradient must have shape (3, C) or (2, C), got {tuple(grad.shape)}")
    scaled = grad
    if grad.shape[0] == 3:
        if temporal_factor < 0:
            scaled = torch.cat([grad[:1], torch.zeros_like(grad[1:])])
        else:
            scaled = torch.cat([grad[:1] * temporal_factor, grad[1:]])
    norm = torch.linalg.vector_norm(scaled, dim=0, keepdim=True)
    return scaled / norm.clamp_min(_EPS)


class _NormalizeGrad(torch.autograd.Function):
    """Identity in the forward; normalises the incoming shift gradient in the backward."""

    @staticmethod
    def forward(shift, temporal_factor):
        return shift.view_as(shift)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.temporal_factor = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        return normalize_shift_grad(grad, ctx.temporal_factor), None


def with_normalized_grad(shift: torch.Tensor, temporal_factor: float = 1.0) -> torch.Tensor:
    """`shift` unchanged, but the gradient that flows back through it is normalised.

    Applied per forward call (like the reference release, which normalises
    inside its backward kernel), so under DDP each worker normalises its own
    gradient before the all-reduce averages them.
    """
    return _NormalizeGrad.apply(shift, temporal_factor)
