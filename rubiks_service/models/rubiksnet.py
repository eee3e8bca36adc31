"""RubiksNet (Fan et al., ECCV 2020): a ResNet-style 2D backbone whose only
spatiotemporal operator is the learnable shift.

Facts of the reference release reproduced here (names, shapes and parameter
counts match `shared/reference/official_state_dict_shapes.json`):

* stem: 3x3 stride-2 conv 3 -> w (no BN/ReLU/pool after it);
* layer0: one block at w, stride 1; layer1..4 at w, 2w, 4w, 8w, first block stride 2;
* pre-activation block: BN -> ReLU; shortcut = identity or a strided 1x1 conv of
  the pre-activated tensor; 1x1 conv -> BN -> ReLU -> shift (carries the
  (1, 2, 2) stride) -> optional SE -> 1x1 conv -> add;
* head: BN + ReLU, global average pool, linear per frame, logits averaged over
  the T frames (TSN average before softmax).

Variants: `rs` (interpolated 3D shift), `rs-q` (quantized forward), `rs-aq`
(attention-quantized temporal shift before the first 1x1 conv + interpolated 2D
spatial shift).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from rubiks_service.ops import RubiksShift2d, RubiksShift3d
from rubiks_service.ops.attention_shift import TemporalAttentionShift
from rubiks_service.ops.grad_norm import GRAD_NORM_FORMS

VARIANTS = ("rs", "rs-q", "rs-aq")
# what a caller (a training config, the CLI) may set beside num_classes / num_frames; the other
# RubiksNetConfig fields are a tier's shape
OPTIONS = ("variant", "dropout", "temporal_factor", "grad_norm_form", "normalize_grad", "shift_init", "fixed_shifts",
           "temporal_shift")


@dataclass(frozen=True)
class RubiksNetConfig:
    width: int
    repeats: tuple[int, int, int, int]
    se: bool = False
    se_reduction: int = 12
    variant: str = "rs"
    num_classes: int = 174
    num_frames: int = 8
    dropout: float = 0.0  # the release has none; the paper's recipe uses 0.3 on the FC
    shift_init: str = "uniform"
    normalize_grad: bool = True
    temporal_factor: float | str = 1.0  # lambda of the scaled gradient normalisation, or "auto" (T / H)
    grad_norm_form: str = "release"  # "release": unit sphere; "paper": Eq. 10's ellipsoid (ops/grad_norm.py)
    aq_max_shift: int = 1
    fixed_shifts: bool = False  # ablation (paper Table 4): frozen TSM temporal + ShiftNet spatial shifts
    temporal_shift: bool = True  # False: 2D shifts per frame, the per-frame baseline

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown RubiksNet variant {self.variant!r}; choose one of {VARIANTS}")
        if self.width < 1 or len(self.repeats) != 4 or min(self.repeats) < 1:
            raise ValueError(f"bad RubiksNet shape: width={self.width}, repeats={self.repeats}")
        if self.num_classes < 1 or self.num_frames < 1:
            raise ValueError("num_classes and num_frames must be >= 1")
        if not self.temporal_shift and self.variant == "rs-aq":
            raise ValueError("temporal_shift=False (per-frame baseline) applies to the rs / rs-q variants")
        if self.fixed_shifts and self.variant == "rs-aq":
            raise ValueError("fixed_shifts applies to the rs / rs-q variants (the shifts are not learned)")
        if self.grad_norm_form not in GRAD_NORM_FORMS:
            raise ValueError(f"unknown grad_norm_form {self.grad_norm_form!r}; choose one of {GRAD_NORM_FORMS}")
        if isinstance(self.temporal_factor, str) and self.temporal_factor != "auto":
            raise ValueError(f"temporal_factor must be a number or 'auto', got {self.temporal_factor!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


TIERS = {
    "tiny": RubiksNetConfig(width=54, repeats=(3, 4, 6, 3)),
    "small": RubiksNetConfig(width=72, repeats=(3, 4, 6, 3), se=True),
    "medium": RubiksNetConfig(width=72, repeats=(3, 4, 23, 3)),
    "large": RubiksNetConfig(width=72, repeats=(3, 8, 36, 3)),
    # not in the paper: small shapes for CPU demos and tests on the synthetic dataset
    "nano": RubiksNetConfig(width=16, repeats=(1, 1, 1, 1)),
    "micro": RubiksNetConfig(width=24, repeats=(1, 2, 2, 1)),
}
RELEASE_TIERS = ("tiny", "small", "medium", "large")


class SqueezeExcite(nn.Module):
    """Per-frame channel gating (keys fc.0 / fc.2, no biases, as in the release)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N*T, C, H, W)
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class _ShiftHolder(nn.Module):
    """Holds the 3D shift under the release's key `as3.rubiks3d.shift`."""

    def __init__(self, shift: RubiksShift3d) -> None:
        super().__init__()
        self.rubiks3d = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rubiks3d(x)


class _FrameShift(nn.Module):
    """A 2D shift applied to each frame of a (N, T, C, H, W) clip (no temporal mixing)."""

    def __init__(self, shift: RubiksShift2d) -> None:
        super().__init__()
        self.spatial = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        out = self.spatial(x.flatten(0, 1))
        return out.view(n, t, *out.shape[1:])


class RubiksBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, cfg: RubiksNetConfig) -> None:
        super().__init__()
        self.num_frames = cfg.num_frames
        self.variant = cfg.variant
        self.bn1 = nn.BatchNorm2d(in_planes)
        conv2 = nn.Conv2d(in_planes, planes, 1, bias=False)
        shift_kwargs = dict(quantize=cfg.variant == "rs-q", normalize_grad=cfg.normalize_grad)
        if cfg.variant == "rs-aq":
            # conv2 = [temporal attention shift, 1x1 conv]; as3 = 2D spatial shift (keys of the release)
            self.conv2 = nn.Sequential(TemporalAttentionShift(in_planes, cfg.aq_max_shift), conv2)
            self.as3 = RubiksShift2d(planes, stride=stride, init="uniform", **shift_kwargs)
        elif not cfg.temporal_shift:  # per-frame baseline: the spatial shift alone
            self.conv2 = conv2
            self.as3 = _FrameShift(RubiksShift2d(planes, stride=stride, init="uniform", **shift_kwargs))
        else:
            self.conv2 = conv2
            init = "tsm-grid" if cfg.fixed_shifts else cfg.shift_init
            self.as3 = _ShiftHolder(
                RubiksShift3d(planes, stride=(1, stride, stride), init=init, learnable=not cfg.fixed_shifts,
                              temporal_factor=cfg.temporal_factor, grad_norm_form=cfg.grad_norm_form,
                              **shift_kwargs)
            )
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes, cfg.se_reduction) if cfg.se else None
        self.conv3 = nn.Conv2d(planes, planes, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            if stride != 1 or in_planes != planes
            else None
        )

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        return x.view(nt // self.num_frames, self.num_frames, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N*T, C, H, W)
        pre = torch.relu(self.bn1(x))
        shortcut = self.shortcut(pre) if self.shortcut is not None else x
        if self.variant == "rs-aq":
            attn_shift, conv = self.conv2
            out = conv(attn_shift(self._clip(pre)).flatten(0, 1))
            out = self.as3(torch.relu(self.bn2(out)))
        else:
            out = torch.relu(self.bn2(self.conv2(pre)))
            out = self.as3(self._clip(out)).flatten(0, 1)
        if self.se is not None:
            out = self.se(out)
        return self.conv3(out) + shortcut


class RubiksBackbone(nn.Module):
    def __init__(self, cfg: RubiksNetConfig) -> None:
        super().__init__()
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False)
        self.layer0 = nn.Sequential(RubiksBlock(w, w, 1, cfg))
        in_planes = w
        for i, (mult, repeats) in enumerate(zip((1, 2, 4, 8), cfg.repeats), start=1):
            planes = w * mult
            blocks = [RubiksBlock(in_planes, planes, 2, cfg)]
            blocks += [RubiksBlock(planes, planes, 1, cfg) for _ in range(repeats - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            in_planes = planes
        self.bn_last = nn.BatchNorm2d(in_planes)
        self.out_channels = in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N*T, 3, H, W) -> (N*T, C)
        x = self.conv1(x)
        for i in range(5):
            x = getattr(self, f"layer{i}")(x)
        return torch.relu(self.bn_last(x)).mean(dim=(2, 3))


class RubiksNet(nn.Module):
    """Video classifier: (N, T, 3, H, W) clips -> (N, num_classes) logits (TSN average over T)."""

    def __init__(self, cfg: RubiksNetConfig, tier: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tier = tier
        self.backbone = RubiksBackbone(cfg)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.new_fc = nn.Linear(self.backbone.out_channels, cfg.num_classes)

    @property
    def num_frames(self) -> int:
        return self.cfg.num_frames

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5 or clips.shape[1] != self.cfg.num_frames or clips.shape[2] != 3:
            raise ValueError(
                f"RubiksNet expects clips of shape (N, {self.cfg.num_frames}, 3, H, W), got {tuple(clips.shape)}"
            )
        n, t = clips.shape[:2]
        features = self.backbone(clips.flatten(0, 1))
        logits = self.new_fc(self.dropout(features))
        return logits.view(n, t, -1).mean(dim=1)


def rubiksnet(tier: str, *, variant: str = "rs", **overrides) -> RubiksNet:
    """Build a RubiksNet tier ('tiny', 'small', 'medium', 'large') with config overrides."""
    if tier not in TIERS:
        raise ValueError(f"unknown RubiksNet tier {tier!r}; choose one of {tuple(TIERS)}")
    return RubiksNet(replace(TIERS[tier], variant=variant, **overrides), tier=tier)
