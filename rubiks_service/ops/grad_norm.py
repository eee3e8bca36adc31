"""Scaled gradient normalisation of the shift parameters (RubiksNet paper, Eq. 9/10).

Per channel c, with g = (g_T, g_H, g_W) the shift gradient and lambda the temporal factor,
two forms are offered:

* ``release`` (the default; what the official CUDA backward kernel does):
      (lambda * g_T, g_H, g_W) / ||(lambda * g_T, g_H, g_W)||_2
  lambda is squared inside the norm: the update is a unit vector (on the unit sphere),
  lambda only tilts it towards or away from time.
* ``paper`` (Eq. 10: lambda * ||dtheta_T||^2 inside the normaliser Z):
      (lambda * g_T, g_H, g_W) / sqrt(lambda * g_T^2 + g_H^2 + g_W^2)
  the update lies on the ellipsoid dT^2 / lambda + dH^2 + dW^2 = 1, temporal semi-axis
  sqrt(lambda): lambda also sets how far time may move in one step.

Both agree at lambda = 1. lambda < 0 selects the temporal-only sign update (sign(g_T), 0, 0)
in either form; lambda = 0 freezes time. A channel with a zero gradient keeps a zero
gradient. For 2D shifts (rows [H, W]) lambda and the form do not apply.
``"auto"`` (the release's option) means lambda = T / H of the shifted tensor, resolved by the
shift module at each forward from its input's shape.
"""
from __future__ import annotations

import torch

_EPS = 1e-12
GRAD_NORM_FORMS = ("release", "paper")


def normalize_shift_grad(grad: torch.Tensor, temporal_factor: float = 1.0, form: str = "release") -> torch.Tensor:
    """Normalise a (3, C) [T, H, W] or (2, C) [H, W] shift gradient channel-wise."""
    if grad.dim() != 2 or grad.shape[0] not in (2, 3):
        raise ValueError(f"shift gradient must have shape (3, C) or (2, C), got {tuple(grad.shape)}")
    if form not in GRAD_NORM_FORMS:
        raise ValueError(f"unknown gradient-normalisation form {form!r}; choose one of {GRAD_NORM_FORMS}")
    scaled = grad
    if grad.shape[0] == 3:
        if temporal_factor < 0:
            scaled = torch.cat([grad[:1], torch.zeros_like(grad[1:])])
        else:
            scaled = torch.cat([grad[:1] * temporal_factor, grad[1:]])
            if form == "paper":  # Z^2 = lambda g_T^2 + g_H^2 + g_W^2 = (lambda g_T)^2 / lambda + ...
                z2 = temporal_factor * grad[:1].square() + grad[1:].square().sum(dim=0, keepdim=True)
                return scaled / z2.sqrt().clamp_min(_EPS)
    norm = torch.linalg.vector_norm(scaled, dim=0, keepdim=True)
    return scaled / norm.clamp_min(_EPS)


def resolve_temporal_factor(temporal_factor: float | str, frames: int, height: int) -> float:
    """lambda as a number: ``"auto"`` is T / H of the shifted tensor (the release's rule)."""
    if temporal_factor == "auto":
        return frames / height
    if isinstance(temporal_factor, str):
        raise ValueError(f"temporal_factor must be a number or 'auto', got {temporal_factor!r}")
    return float(temporal_factor)


class _NormalizeGrad(torch.autograd.Function):
    """Identity in the forward; normalises the incoming shift gradient in the backward."""

    @staticmethod
    def forward(shift, temporal_factor, form):
        return shift.view_as(shift)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.temporal_factor, ctx.form = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad):
        return normalize_shift_grad(grad, ctx.temporal_factor, ctx.form), None, None


def with_normalized_grad(shift: torch.Tensor, temporal_factor: float = 1.0, form: str = "release") -> torch.Tensor:
    """`shift` unchanged, but the gradient that flows back through it is normalised.

    Applied per forward call (like the reference release, which normalises
    inside its backward kernel), so under DDP each worker normalises its own
    gradient before the all-reduce averages them.
    """
    if form not in GRAD_NORM_FORMS:
        raise ValueError(f"unknown gradient-normalisation form {form!r}; choose one of {GRAD_NORM_FORMS}")
    return _NormalizeGrad.apply(shift, temporal_factor, form)
