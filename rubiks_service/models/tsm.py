"""TSM baselines (Lin et al., ICCV 2019): ResNet-18/34/50 with the residual
temporal shift of 1/8 channels each way in every block's residual branch, and
`tsm-nano` / `tsm-micro`, the same block rule at CPU-demo widths.

The ResNets are written here rather than imported from torchvision (whose PyPI
wheels do not load beside this project's CPU torch), with torchvision's module
names, so a torchvision or TSM state dict loads by key. No weights can be
downloaded here: random init, or a local file via `load_state_dict`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def temporal_shift(x: torch.Tensor, fold_div: int = 8) -> torch.Tensor:
    """TSM shift of a (N, T, C, H, W) clip: C/fold_div channels read the next frame,
    the next C/fold_div the previous one, zero padded; the rest are unchanged."""
    fold = x.shape[2] // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out


class _TemporalShiftFrames(nn.Module):
    def __init__(self, num_frames: int, fold_div: int = 8) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.fold_div = fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N*T, C, H, W)
        nt, c, h, w = x.shape
        clip = x.view(nt // self.num_frames, self.num_frames, c, h, w)
        return temporal_shift(clip, self.fold_div).view(nt, c, h, w)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, downsample: nn.Module | None, num_frames: int | None):
        super().__init__()
        self.shift = _TemporalShiftFrames(num_frames) if num_frames else nn.Identity()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, downsample: nn.Module | None, num_frames: int | None):
        super().__init__()
        self.shift = _TemporalShiftFrames(num_frames) if num_frames else nn.Identity()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


@dataclass(frozen=True)
class TSMConfig:
    block: type
    layers: tuple[int, int, int, int]
    width: int = 64  # channels of the stem and layer1; layer2..4 double it (ResNet: 64)
    num_classes: int = 174
    num_frames: int = 8
    dropout: float = 0.0
    temporal_shift: bool = True  # False: the per-frame (TSN) baseline


DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}
# not in the TSM paper: CPU-demo widths with TSM-R18's block rule (BasicBlock: residual shift of 1/8
# channels each way, then two 3x3 convs) and the repeats of rubiksnet-nano / -micro, widths set so the
# MACs land within 5% of theirs (48^2 and 224^2, 8 frames)
SMALL = {"nano": dict(block=BasicBlock, layers=(1, 1, 1, 1), width=8),
         "micro": dict(block=BasicBlock, layers=(1, 2, 2, 1), width=12)}


# what a caller may set beside num_classes / num_frames (TSM's shift is fixed: no learned-shift settings)
OPTIONS = ("dropout", "temporal_shift")


class TSMResNet(nn.Module):
    """(N, T, 3, H, W) clips -> (N, num_classes), logits averaged over frames."""

    def __init__(self, cfg: TSMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_planes = w
        shift_frames = cfg.num_frames if cfg.temporal_shift else None  # None: per-frame (TSN) model
        for i, (planes, blocks) in enumerate(zip((w, 2 * w, 4 * w, 8 * w), cfg.layers), start=1):
            stride = 1 if i == 1 else 2
            downsample = None
            if stride != 1 or in_planes != planes * cfg.block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(in_planes, planes * cfg.block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * cfg.block.expansion),
                )
            layer = [cfg.block(in_planes, planes, stride, downsample, shift_frames)]
            in_planes = planes * cfg.block.expansion
            layer += [cfg.block(in_planes, planes, 1, None, shift_frames) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_planes, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def num_frames(self) -> int:
        return self.cfg.num_frames

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5 or clips.shape[1] != self.cfg.num_frames or clips.shape[2] != 3:
            raise ValueError(f"TSM expects clips of shape (N, {self.cfg.num_frames}, 3, H, W), got {tuple(clips.shape)}")
        n, t = clips.shape[:2]
        x = self.maxpool(self.relu(self.bn1(self.conv1(clips.flatten(0, 1)))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        logits = self.fc(self.dropout(x.mean(dim=(2, 3))))
        return logits.view(n, t, -1).mean(dim=1)


def tsm_small(size: str, **overrides) -> TSMResNet:
    """`tsm-nano` / `tsm-micro`: TSM-R18 blocks at CPU-demo widths."""
    if size not in SMALL:
        raise ValueError(f"TSM demo size must be one of {tuple(SMALL)}, got {size!r}")
    return TSMResNet(TSMConfig(**SMALL[size], **overrides))


def tsm_resnet(depth: int, **overrides) -> TSMResNet:
    if depth not in DEPTHS:
        raise ValueError(f"TSM-ResNet depth must be one of {tuple(DEPTHS)}, got {depth}")
    block, layers = DEPTHS[depth]
    return TSMResNet(TSMConfig(block=block, layers=layers, **overrides))
