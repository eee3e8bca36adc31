"""The inference form of a trained video model: same logits, less work per clip.

`inference_model(model)` returns a new eval-mode model (the input is left as it
is) that computes the trained model's logits (within 1e-4 relative in fp32):

* RS-AQ attention shifts are hard-max converted to integer temporal shifts
  (a gather; the attention weights are gone);
* every BatchNorm that follows a convolution is folded into that convolution's
  weight and bias;
* parameters no longer require gradients.

It is the one form used by `rubiks profile --latency`, `rubiks eval`, the sweep
trials' latency metric and the predict/export paths.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from rubiks_service.ops.attention_shift import attention_shift_layers

from .rubiksnet import RubiksBlock, RubiksNet
from .tsm import BasicBlock, Bottleneck, TSMResNet


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv computing bn(conv(x)) with bn's running statistics (eval mode)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: the BatchNorm keeps no running statistics")
    # in float64 so the folded weights round once
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    if conv.bias is not None:
        shift = shift + conv.bias.double() * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    fused = fused.to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    fused.bias.copy_(shift.to(conv.weight.dtype))
    return fused


def _fold_rubiksnet(model: RubiksNet) -> None:
    for block in model.modules():
        if not isinstance(block, RubiksBlock):
            continue
        if isinstance(block.conv2, nn.Sequential):  # rs-aq: [attention shift, 1x1 conv]
            block.conv2[1] = fold_batchnorm(block.conv2[1], block.bn2)
        else:
            block.conv2 = fold_batchnorm(block.conv2, block.bn2)
        block.bn2 = nn.Identity()


def _fold_tsm(model: TSMResNet) -> None:
    model.conv1 = fold_batchnorm(model.conv1, model.bn1)
    model.bn1 = nn.Identity()
    for block in model.modules():
        if isinstance(block, BasicBlock | Bottleneck):
            for i in (1, 2, 3):
                if hasattr(block, f"conv{i}"):
                    setattr(block, f"conv{i}", fold_batchnorm(getattr(block, f"conv{i}"), getattr(block, f"bn{i}")))
                    setattr(block, f"bn{i}", nn.Identity())
            if block.downsample is not None:
                block.downsample = nn.Sequential(fold_batchnorm(block.downsample[0], block.downsample[1]))


def inference_model(model: nn.Module) -> nn.Module:
    """A new eval-mode model with the same logits as `model` (which is not modified)."""
    if not isinstance(model, RubiksNet | TSMResNet):
        raise TypeError(f"inference_model: expected a RubiksNet or TSM model, got {type(model).__name__}")
    fast = copy.deepcopy(model).eval()
    for layer in attention_shift_layers(fast):
        if not layer.converted:
            layer.convert_()
    if isinstance(fast, RubiksNet):
        _fold_rubiksnet(fast)
    else:
        _fold_tsm(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
