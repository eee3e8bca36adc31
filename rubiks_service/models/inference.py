"""The inference form of a trained video model: same logits, less work per clip.

`inference_model(model)` returns a new eval-mode model (the input is left as it
is) that computes the trained model's logits (within 1e-4 relative in fp32):

* RS-AQ attention shifts are hard-max converted to integer temporal shifts
  (a gather; the attention weights are gone);
* every BatchNorm that follows a convolution is folded into that convolution's
  weight and bias;
* 1x1 convolutions run as batched GEMMs over the frames of the NCHW tensor
  (`Conv1x1`): oneDNN's 1x1 path reorders NCHW to its blocked layout and back on
  every call, which costs 2-3x at RubiksNet's 54-72 channels; the block's
  residual add is the GEMM's accumulate (beta = 1), ReLUs are in place;
* on CPU in float32, each block (without SE) is one call of the compiled
  `rubiks::block_forward` op (ext/cpu/rubiks_block_cpu.cpp): BN1 + ReLU, the RS-AQ
  temporal shift, conv2 + ReLU, the shift, conv3 and the residual computed by
  tiles that stay in cache, one intermediate tensor written instead of six;
  elsewhere (CUDA, other dtypes, SE blocks, the export graphs) the same block
  runs as the modules below;
* parameters no longer require gradients;
* the process keeps the memory a forward frees in its heap (`process_heap`): without it every call
  faults its activations in afresh, a fifth to a quarter of RubiksNet-tiny's batch-1 CPU time.

It is the one form used by `rubiks profile --latency`, `rubiks eval`, the sweep
trials' latency metric and the predict/export paths.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from rubiks_service.ops import RubiksShift2d, RubiksShift3d
from rubiks_service.ops._extension import has_block_kernel
from rubiks_service.ops.attention_shift import convert_attention_shifts

from .process_heap import retain_freed_memory
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


# Below this many pixels per frame the GEMM per frame is too thin (N = 49 at 7x7): oneDNN's conv,
# which packs all frames into one GEMM, is faster there (measured on the 2-core EPYC, see README).
GEMM_MIN_PIXELS = 196


class Conv1x1(nn.Module):
    """A 1x1 convolution (optionally strided) of an NCHW tensor as one batched GEMM per call:
    out[n] = W @ x[n] (+ bias) (+ residual, accumulated in place); frames smaller than
    GEMM_MIN_PIXELS go through the library convolution instead."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.padding != (0, 0) or conv.dilation != (1, 1):
            raise ValueError(f"Conv1x1: not a plain 1x1 convolution: {conv}")
        self.stride = conv.stride
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        h, w = ((size - 1) // s + 1 for size, s in zip(x.shape[2:], self.stride))
        if h * w < GEMM_MIN_PIXELS:
            out = F.conv2d(x, self.weight[:, :, None, None], self.bias, stride=self.stride)
            return out if residual is None else residual.add_(out)
        if self.stride != (1, 1):
            x = x[:, :, :: self.stride[0], :: self.stride[1]]
        n, c = x.shape[:2]
        cols = x.reshape(n, c, h * w)
        weight = self.weight.expand(n, -1, -1)
        if residual is not None:
            # accumulate into the residual (the block owns it: the previous block's output or its shortcut)
            acc = residual.contiguous().view(n, -1, h * w)
            out = acc.baddbmm_(weight, cols)
            if self.bias is not None:
                out.add_(self.bias.view(1, -1, 1))
        elif self.bias is not None:
            out = torch.baddbmm(self.bias.view(1, -1, 1), weight, cols)
        else:
            out = torch.bmm(weight, cols)
        return out.view(n, -1, h, w)


class InferenceRubiksBlock(nn.Module):
    """A RubiksNet block with bn2 folded into conv2, GEMM 1x1 convs and the residual add fused."""

    def __init__(self, block: RubiksBlock, block_kernel: bool = True) -> None:
        super().__init__()
        self.num_frames = block.num_frames
        self.aq = isinstance(block.conv2, nn.Sequential)  # rs-aq: [attention shift, 1x1 conv]
        conv2 = block.conv2[1] if self.aq else block.conv2
        self.bn1 = block.bn1
        self.temporal = block.conv2[0] if self.aq else None
        self.conv2 = Conv1x1(fold_batchnorm(conv2, block.bn2))
        self.as3 = block.as3
        self.se = block.se
        self.conv3 = Conv1x1(block.conv3)
        self.shortcut = None if block.shortcut is None else Conv1x1(block.shortcut)
        self.kernel_args = self._kernel_args() if block_kernel and has_block_kernel() else None

    @torch.no_grad()
    def _kernel_args(self) -> tuple | None:
        """The arguments of rubiks::block_forward after x, or None when the block has no such form."""
        shift = getattr(self.as3, "rubiks3d", None) or getattr(self.as3, "spatial", None) or self.as3
        if self.se is not None or not isinstance(shift, RubiksShift3d | RubiksShift2d) or any(shift.padding):
            return None
        values = shift.shift.detach().float()
        if isinstance(shift, RubiksShift2d):  # a 2D shift is the 3D one with no temporal shift
            values = torch.cat([torch.zeros_like(values[:1]), values])
        stride = shift.stride[-1]
        if shift.stride[-2] != stride or (shift.rank == 3 and shift.stride[0] != 1):
            return None
        if self.shortcut is not None and self.shortcut.stride != (stride, stride):
            return None
        bn = self.bn1
        scale = bn.running_var.double().add(bn.eps).rsqrt() * bn.weight.double()
        bias = bn.bias.double() - bn.running_mean.double() * scale
        hard = None if self.temporal is None else self.temporal.hard_shift.long().contiguous()
        shortcut = None if self.shortcut is None else self.shortcut.weight.contiguous()
        return (scale.float(), bias.float(), hard, self.conv2.weight.contiguous(), self.conv2.bias.contiguous(),
                values.contiguous(), shift.quantize, stride, self.conv3.weight.contiguous(), shortcut,
                self.num_frames)

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0] // self.num_frames, self.num_frames, *x.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N*T, C, H, W)
        if self.kernel_args is not None and x.device.type == "cpu" and x.dtype == torch.float32:
            return torch.ops.rubiks.block_forward(x.contiguous(), *self.kernel_args)
        pre = torch.relu_(self.bn1(x))
        # with no shortcut conv the input itself is the residual, overwritten by conv3's accumulate
        residual = self.shortcut(pre) if self.shortcut is not None else x
        if self.temporal is not None:
            pre = self.temporal(self._clip(pre)).flatten(0, 1)
        out = torch.relu_(self.conv2(pre))
        out = self.as3(out) if self.aq else self.as3(self._clip(out)).flatten(0, 1)
        if self.se is not None:
            out = self.se(out)
        return self.conv3(out, residual=residual)


def _fast_rubiksnet(model: RubiksNet, block_kernel: bool) -> None:
    backbone = model.backbone
    for i in range(5):
        layer = getattr(backbone, f"layer{i}")
        setattr(backbone, f"layer{i}", nn.Sequential(*(InferenceRubiksBlock(b, block_kernel) for b in layer)))


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


def inference_model(model: nn.Module, *, block_kernel: bool = True) -> nn.Module:
    """A new eval-mode model with the same logits as `model` (which is not modified). `block_kernel=False`
    keeps every RubiksNet block as modules (the export graphs rewrite their shift modules)."""
    if not isinstance(model, RubiksNet | TSMResNet):
        raise TypeError(f"inference_model: expected a RubiksNet or TSM model, got {type(model).__name__}")
    retain_freed_memory()
    fast = copy.deepcopy(model).eval()
    convert_attention_shifts(fast)
    if isinstance(fast, RubiksNet):
        _fast_rubiksnet(fast, block_kernel)
    else:
        _fold_tsm(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


def fastest_form(model: nn.Module) -> nn.Module:
    """The fastest exact CPU form of `model` measured by bench/bench_models_cpu.py (docs/results.md): the
    inference form, and for TSM with channels-last weights (oneDNN's NHWC convolutions, 1.1-1.4x faster
    there; for RubiksNet neither channels-last nor torch.compile beat the block kernel). What latency figures
    (`models.profile`) time. `model` is not modified."""
    fast = inference_model(model)
    if isinstance(fast, TSMResNet):
        fast = fast.to(memory_format=torch.channels_last)
    return fast
