"""Fake (meta) kernels and autograd formulas of the compiled ops.

The op schemas and the backend kernels live in ext/; this module adds what
torch.compile and autograd need, for both the 3D and the 2D ops:
  forward:  out = shift{3,2}d(x, shift)
  backward: grad_x = shift*_grad_input(grad, shift, x.shape)   (adjoint of the forward, exact;
                                                              of the quantized gather under RS-Q)
            grad_shift = shift*_grad_shift(grad, x, shift)     (of the interpolated op, also under RS-Q)
"""
from __future__ import annotations

import torch

from ._checks import output_shape


def _register(name: str) -> None:
    grad_input = getattr(torch.ops.rubiks, f"{name}_grad_input")
    grad_shift = getattr(torch.ops.rubiks, f"{name}_grad_shift")

    @torch.library.register_fake(f"rubiks::{name}")
    def _forward_fake(x, shift, stride, padding, quantize):
        return x.new_empty(output_shape(x.shape, stride, padding))

    @torch.library.register_fake(f"rubiks::{name}_grad_input")
    def _grad_input_fake(grad_out, shift, input_size, stride, padding, quantize):
        return grad_out.new_empty(input_size)

    @torch.library.register_fake(f"rubiks::{name}_grad_shift")
    def _grad_shift_fake(grad_out, x, shift, stride, padding):
        return shift.new_empty(shift.shape)

    def setup_context(ctx, inputs, output):
        x, shift, stride, padding, quantize = inputs
        ctx.save_for_backward(x, shift)
        ctx.config = (stride, padding, quantize)

    def backward(ctx, grad):
        x, shift = ctx.saved_tensors
        stride, padding, quantize = ctx.config
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = grad_input(grad, shift, x.shape, stride, padding, quantize)
        if ctx.needs_input_grad[1]:
            gs = grad_shift(grad, x, shift, stride, padding)
        return gx, gs, None, None, None

    torch.library.register_autograd(f"rubiks::{name}", backward, setup_context=setup_context)


for _name in ("shift3d", "shift2d"):
    _register(_name)


def _block_forward_fake(x, bn_scale, bn_shift, time_shift, w2, b2, shift, quantize, stride, w3, w_shortcut,
                        num_frames):
    h, w = ((size - 1) // stride + 1 for size in x.shape[2:])
    return x.new_empty((x.shape[0], w2.shape[0], h, w))


# the inference-only block op (no autograd): its output shape for torch.compile; absent from older builds
if hasattr(torch.ops.rubiks, "block_forward"):
    torch.library.register_fake("rubiks::block_forward")(_block_forward_fake)
