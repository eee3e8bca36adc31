"""Exporting a trained model: ONNX in standard operators, and torch.export (pt2).

ONNX (opset 18, `ONNX_OPSET`): the inference form (`models.inference`: BN folded, RS-AQ as
integer shifts) with every shift rewritten for the input it is exported for (T frames at S^2),
so onnxruntime runs it anywhere with no custom domain:

* a per-channel shift along one axis reads, for output index o, input indices o*s - p + floor(v)
  (weight 1 - frac(v)) and the next one (weight frac(v)); out-of-range reads a zero slot padded
  onto the axis. Channel and axis are flattened together so one `Gather` with a constant index
  moves every channel by its own offset, and a `Mul` + `ReduceSum` mixes the taps;
* an integer shift (RS-Q, converted RS-AQ, TSM's fixed shift) has one tap: a pure index move;
* axes that do not move (zero shift, stride 1) are skipped; the W axis is gathered transposed.

The batch dimension stays dynamic. pt2 keeps the registered ops (`torch.ops.rubiks.*`): load it
with `torch.export.load` after `import rubiks_service.ops`.
"""
from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rubiks_service.ops.attention_shift import TemporalAttentionShift
from rubiks_service.ops.modules import RubiksShift2d, RubiksShift3d

from .inference import inference_model
from .tsm import _TemporalShiftFrames

ONNX_OPSET = 18
FORMATS = ("onnx", "pt2")


def _axis_taps(shift: torch.Tensor, n: int, stride: int, padding: int, quantize: bool):
    """Gather indices (taps, C, m) into the axis padded with one zero slot (index n), and the
    per-channel tap weights (taps, C) or None for a pure index move; None if the axis stays as it is."""
    shift = shift.detach().float().cpu()
    m = (n + 2 * padding - 1) // stride + 1
    base = torch.arange(m) * stride - padding  # (m,)
    if quantize:
        offsets, weights = [torch.floor(shift + 0.5).long()], None
    else:
        lower = torch.floor(shift)
        frac = shift - lower
        if bool((frac == 0).all()):
            offsets, weights = [lower.long()], None
        else:
            offsets, weights = [lower.long(), lower.long() + 1], torch.stack([1 - frac, frac])
    if weights is None and stride == 1 and padding == 0 and bool((offsets[0] == 0).all()):
        return None
    index = torch.stack([base[None, :] + off[:, None] for off in offsets])  # (taps, C, m)
    index = torch.where((index >= 0) & (index < n), index, torch.full_like(index, n))
    return index, weights


class _AxisGather(nn.Module):
    """A per-channel shift along one axis of (B, A, C, X, Y) (`axis="T"`: A) or of (B, C, X, Y)
    (`axis="X"`: X), as one Gather over the flattened (channel, axis) dimension."""

    def __init__(self, axis: str, index: torch.Tensor, weights: torch.Tensor | None, shape: tuple[int, ...]):
        super().__init__()
        self.axis, self.shape = axis, shape
        self.taps, channels, self.m = index.shape
        a = shape[0] if axis == "T" else shape[1]  # the moved axis' length (before padding)
        if axis == "T":  # flattened (axis, channel): position a * C + c, output order (tap, m, C)
            flat = index.permute(0, 2, 1) * channels + torch.arange(channels)[None, None, :]
        else:  # flattened (channel, axis): position c * (A + 1) + a, output order (tap, C, m)
            flat = index + (torch.arange(channels) * (a + 1))[None, :, None]
        self.register_buffer("index", flat.reshape(-1).contiguous())
        if weights is None:
            self.weights = None
        else:
            view = (1, self.taps, 1, channels, 1, 1) if axis == "T" else (1, self.taps, channels, 1, 1)
            self.register_buffer("weights", weights.reshape(view).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis == "T":  # x: (B, T, C, H, W)
            t, c, h, w = x.shape[1:]
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, 1)).reshape(-1, (t + 1) * c, h, w)
            out = x.index_select(1, self.index).reshape(-1, self.taps, self.m, c, h, w)
        else:  # x: (B, C, X, Y), gather along X
            c, a, y = x.shape[1:]
            x = F.pad(x, (0, 0, 0, 1)).reshape(-1, (a + 1) * c, y)
            out = x.index_select(1, self.index).reshape(-1, self.taps, c, self.m, y)
        if self.weights is None:
            return out.squeeze(1)
        return (out * self.weights).sum(dim=1)


class GatherShift(nn.Module):
    """A shift module rewritten as gathers and weighted sums for a fixed (T, C, H, W) input.

    `layout`: "clip" (B, T, C, H, W) in and out; "frames" (B*T, C, H, W) with a temporal shift;
    "image" (B, C, H, W) with a 2D shift."""

    def __init__(self, shift: torch.Tensor, in_shape: tuple[int, int, int, int], layout: str,
                 stride=(1, 1, 1), padding=(0, 0, 0), quantize: bool = False) -> None:
        super().__init__()
        t, c, h, w = in_shape
        self.layout, self.frames = layout, t
        rows = shift if shift.shape[0] == 3 else torch.cat([torch.zeros(1, shift.shape[1]), shift.detach().cpu()])
        sizes = (t, h, w)
        self.steps = nn.ModuleList()
        self.order = []
        out = [t, h, w]
        for axis, name in enumerate("THW"):
            taps = _axis_taps(rows[axis], sizes[axis], stride[axis], padding[axis], quantize)
            if taps is None:
                continue
            index, weights = taps
            shape = (out[0], c, out[1], out[2])
            if name == "T":
                step = _AxisGather("T", index, weights, shape)
            else:  # H: (B*T, C, H, W) along H; W: the same on the transposed (B*T, C, W, H)
                moved = (c, out[1], out[2]) if name == "H" else (c, out[2], out[1])
                step = _AxisGather("X", index, weights, (0, *moved[1:]))
            out[axis] = index.shape[-1]
            self.steps.append(step)
            self.order.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "frames":
            x = x.reshape(-1, self.frames, *x.shape[1:])
        elif self.layout == "image":
            x = x.unsqueeze(1)
        for name, step in zip(self.order, self.steps):
            if name == "T":
                x = step(x)
                continue
            b, t = x.shape[:2]
            flat = x.flatten(0, 1)
            flat = step(flat) if name == "H" else step(flat.transpose(2, 3)).transpose(2, 3)
            x = flat.reshape(-1, t, *flat.shape[1:])
        if self.layout == "frames":
            return x.flatten(0, 1)
        if self.layout == "image":
            return x.squeeze(1)
        return x


def _shift_inputs(model: nn.Module, clips: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The input shape each shift module sees for `clips`."""
    shapes, hooks = {}, []

    def record(name):
        def hook(module, args, output):  # returns None: the output stays as it is
            shapes.setdefault(name, tuple(args[0].shape))
        return hook

    for name, module in model.named_modules():
        if isinstance(module, RubiksShift3d | RubiksShift2d | TemporalAttentionShift | _TemporalShiftFrames):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model(clips)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _gather_form(module: nn.Module, shape: tuple[int, ...]) -> GatherShift:
    if isinstance(module, RubiksShift3d):
        return GatherShift(module.shift, shape[1:], "clip", module.stride, module.padding, module.quantize)
    if isinstance(module, RubiksShift2d):
        return GatherShift(module.shift, (1, *shape[1:]), "image", (1, *module.stride), (0, *module.padding),
                           module.quantize)
    if isinstance(module, TemporalAttentionShift):
        hard = module.hard_shift.float()
        zeros = torch.zeros_like(hard)
        return GatherShift(torch.stack([hard, zeros, zeros]), shape[1:], "clip", quantize=True)
    # TSM: 1/fold_div channels read the next frame, the next 1/fold_div the previous one
    t, (c, h, w) = module.num_frames, shape[1:]
    fold = c // module.fold_div
    temporal = torch.zeros(c)
    temporal[:fold], temporal[fold : 2 * fold] = 1.0, -1.0
    return GatherShift(torch.stack([temporal, torch.zeros(c), torch.zeros(c)]), (t, c, h, w), "frames", quantize=True)


def export_form(model: nn.Module, frames: int, size: int) -> nn.Module:
    """The inference form of `model` with every shift as gathers and weighted sums, for clips of
    `frames` x 3 x `size`^2 (any batch). Same logits (within float rounding)."""
    fast = inference_model(model, block_kernel=False)
    clips = torch.zeros(1, frames, 3, size, size)
    shapes = _shift_inputs(fast, clips)
    for name, shape in shapes.items():
        parent_name, _, child = name.rpartition(".")
        parent = fast.get_submodule(parent_name) if parent_name else fast
        setattr(parent, child, _gather_form(parent.get_submodule(child), shape))
    return fast.eval()


def _example(frames: int, size: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(0))


def export_onnx(model: nn.Module, path: str | os.PathLike, *, frames: int = 8, size: int = 224) -> dict:
    """Write `model` as ONNX (standard operators, opset `ONNX_OPSET`, dynamic batch); returns a summary."""
    import logging

    import onnx

    # the exporter logs every torchvision op it cannot register (torchvision is not a dependency)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    graph = export_form(model, frames, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.onnx.export(graph, (_example(frames, size),), dynamo=True, opset_version=ONNX_OPSET,
                                    input_names=["clips"], output_names=["logits"],
                                    dynamic_shapes={"clips": {0: batch}}, external_data=False, verbose=False,
                                    optimize=True)
    program.save(os.fspath(path), external_data=False)
    proto = onnx.load(os.fspath(path))
    domains = sorted({node.domain or "ai.onnx" for node in proto.graph.node} | {f.domain for f in proto.functions})
    ops = sorted({node.op_type for node in proto.graph.node})
    return {"format": "onnx", "path": os.fspath(path), "opset": ONNX_OPSET, "domains": domains, "operators": ops,
            "input": f"clips float32 (batch, {frames}, 3, {size}, {size}), batch dynamic", "output": "logits"}


def export_pt2(model: nn.Module, path: str | os.PathLike, *, frames: int = 8, size: int = 224) -> dict:
    """Write the inference form with torch.export (registered rubiks ops kept); dynamic batch."""
    fast = inference_model(model, block_kernel=False)  # the shift ops, which have CUDA kernels too
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.export.export(fast, (_example(frames, size),), dynamic_shapes={"clips": {0: batch}})
    torch.export.save(program, os.fspath(path))
    ops = sorted({str(n.target) for n in program.graph.nodes if n.op == "call_function"
                  and str(n.target).startswith("rubiks.")})
    return {"format": "pt2", "path": os.fspath(path), "rubiks_ops": ops,
            "input": f"clips float32 (batch, {frames}, 3, {size}, {size}), batch dynamic", "output": "logits"}


def check_onnx(path: str | os.PathLike, model: nn.Module, *, frames: int, size: int, batch: int = 3) -> dict:
    """Run the exported file with onnxruntime (CPU) on a batch other than the export's and compare
    with PyTorch's inference form: {batch, max_abs_diff, max_rel_diff (to the largest logit)}."""
    import onnxruntime as ort

    clips = _example(frames, size, batch)
    with torch.no_grad():
        expected = inference_model(model)(clips).numpy()
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: clips.numpy()})[0]
    diff = float(abs(got - expected).max())
    return {"batch": batch, "max_abs_diff": diff, "max_rel_diff": diff / max(float(abs(expected).max()), 1e-12)}


def export_model(model: nn.Module, path: str | os.PathLike, fmt: str, *, frames: int = 8, size: int = 224,
                 check: bool = True, int8_calibration: Sequence[np.ndarray] | None = None,
                 metadata: Mapping[str, str] | None = None) -> dict:
    """Export to `fmt` ("onnx" | "pt2"); with `check`, an ONNX file is run once by onnxruntime against PyTorch.
    With `int8_calibration` (clips of the training data, `quantize.calibration_clips`) the ONNX file is the
    int8 form (`quantize.quantize_onnx`); its check reports how far int8 moves the logits. `metadata`: the
    ONNX file's metadata_props (what the model is: `serving.onnx_model.onnx_metadata`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    if int8_calibration is not None and fmt != "onnx":
        raise ValueError("int8 export is of the ONNX format only")
    model = copy.deepcopy(model).eval()
    if fmt == "pt2":
        return export_pt2(model, path, frames=frames, size=size)
    if int8_calibration is not None:
        from .quantize import quantize_onnx

        with tempfile.TemporaryDirectory() as tmp:
            fp32 = os.path.join(tmp, "fp32.onnx")
            summary = export_onnx(model, fp32, frames=frames, size=size)
            summary.update(quantize_onnx(fp32, path, int8_calibration), path=os.fspath(path))
    else:
        summary = export_onnx(model, path, frames=frames, size=size)
    if metadata:
        write_onnx_metadata(path, metadata)
        summary["metadata"] = sorted(metadata)
    if check:
        summary["onnxruntime_check"] = check_onnx(path, model, frames=frames, size=size)
    return summary


def write_onnx_metadata(path: str | os.PathLike, metadata: Mapping[str, str]) -> None:
    """Set the file's metadata_props (onnxruntime: `get_modelmeta().custom_metadata_map`), replacing keys
    of the same name."""
    import onnx

    proto = onnx.load(os.fspath(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    for key, value in [*kept, *((k, str(v)) for k, v in metadata.items())]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, os.fspath(path))


__all__ = ["FORMATS", "ONNX_OPSET", "GatherShift", "check_onnx", "export_form", "export_model", "export_onnx",
           "export_pt2", "write_onnx_metadata"]
