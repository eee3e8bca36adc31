"""int8 inference of both families: onnxruntime's static quantization of the exported ONNX graph.

The fp32 graph of `rubiks export --format onnx` (standard operators) is quantized by
`onnxruntime.quantization.quantize_static` in QDQ form: weights int8 per output channel,
activations uint8 with ranges calibrated (min/max) on clips of the training data, read with the
evaluation protocol's sampling and crop (1 clip, centre crop) and normalised as in evaluation.
Only the convolutions and matrix products are quantized; the shift's gathers and weighted sums,
the residual adds and the head stay in float, so each int8 layer is dequantized where it ends.
onnxruntime runs the result on CPU (its x86 int8 kernels). PyTorch's own int8 flow (PT2E) is not
in torch 2.13's `torch.ao` any more, so the ONNX graph is the one int8 form here.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence

import numpy as np

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def calibration_clips(videos: Sequence[str], segments: int, crop_size: int, count: int = 32,
                      seed: int = 0) -> list[np.ndarray]:
    """Up to `count` (1, T, 3, S, S) float32 clips from `videos` (spread over the list), each as the
    1-clip evaluation view, normalised as in evaluation; unreadable videos are skipped."""
    import torch

    from rubiks_service.data import ClipMode, ClipSpec, read_views
    from rubiks_service.data.transforms import normalize
    from rubiks_service.data.video import VideoReadError

    spec = ClipSpec(segments=segments, crop_size=crop_size, mode=ClipMode.ONE_CLIP)
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(videos))[: max(count, 0)]
    clips = []
    for i in sorted(picked):
        try:
            views = read_views(videos[i], spec, rng)
        except VideoReadError:
            continue
        clips.append(normalize(torch.from_numpy(views[:1])).numpy().astype(np.float32))
    return clips


class _Clips:
    """onnxruntime's CalibrationDataReader protocol over a list of clips (input name `clips`)."""

    def __init__(self, clips: Iterable[np.ndarray], input_name: str = "clips") -> None:
        self._feeds = iter([{input_name: c} for c in clips])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - called by some calibrators only
        pass


def quantize_onnx(fp32_path: str | os.PathLike, int8_path: str | os.PathLike,
                  calibration: Sequence[np.ndarray]) -> dict:
    """Write the int8 (QDQ) form of the fp32 ONNX file at `fp32_path`, calibrated on `calibration`
    (clips of the training data); returns a summary."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 quantization needs at least one calibration clip")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        # shape inference and graph cleanup first, as onnxruntime recommends for static quantization
        quant_pre_process(os.fspath(fp32_path), prepared, skip_symbolic_shape=True)
        quantize_static(prepared, os.fspath(int8_path), _Clips(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(QUANTIZED_OPS), calibrate_method=CalibrationMethod.MinMax)
    import onnx

    ops = sorted({node.op_type for node in onnx.load(os.fspath(int8_path)).graph.node})
    return {"int8": True, "operators": ops, "quantization": "onnxruntime static, QDQ, int8 weights per channel, uint8 activations",
            "quantized_ops": list(QUANTIZED_OPS), "calibration_clips": len(calibration)}
