"""An exported ONNX file that says what it is, and `rubiks predict model.onnx VIDEO` running it.

`rubiks export --format onnx` writes these metadata_props (onnxruntime:
`InferenceSession(path).get_modelmeta().custom_metadata_map`), so a user can feed the file a real
video without reading this code:

    classes        JSON list, the class of each logit column
    input_layout   the input tensor: clips float32 (batch, frames, 3, size, size), RGB
    mean, std      JSON lists: per-channel normalisation of pixels in [0, 1], (x - mean) / std
    frames, size   frames per clip (sampled as the evaluation protocol does) and the square crop side
    output         the output tensor: logits (batch, classes)
    architecture   e.g. rubiksnet-nano (variant: rs / rs-q / rs-aq)
    model_name, model_version, model_alias, run_id, source   where the model came from (when known)
"""
from __future__ import annotations

import json
import os

import torch
from torch import nn

from rubiks_service.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rubiks_service.tracking.model_files import ModelLoadError

from .models import LoadedModel

ONNX_SUFFIX = ".onnx"
REQUIRED = ("classes", "frames", "size", "mean", "std")


def is_onnx_file(spec: str) -> bool:
    return spec.lower().endswith(ONNX_SUFFIX)


def onnx_metadata(loaded: LoadedModel, frames: int, size: int) -> dict[str, str]:
    """The metadata_props an exported file of `loaded` carries (all values strings, as ONNX stores them)."""
    meta = {
        "classes": json.dumps(list(loaded.classes)),
        "input_layout": f"clips float32 (batch, {frames}, 3, {size}, {size}): batch, frames, RGB channels, "
                        "height, width; frames sampled and cropped as the evaluation protocol does",
        "mean": json.dumps(list(IMAGENET_MEAN)), "std": json.dumps(list(IMAGENET_STD)),
        "normalisation": "pixels scaled to [0, 1], then (x - mean) / std per RGB channel",
        "frames": str(frames), "size": str(size),
        "output": f"logits float32 (batch, {len(loaded.classes)}): softmax gives class probabilities",
    }
    if loaded.config is not None:
        meta["architecture"] = loaded.config.model.name
        meta["variant"] = str(loaded.config.model.variant)
    origin = loaded.origin
    for key, value in (("model_name", origin.get("name")), ("model_version", origin.get("version")),
                       ("model_alias", origin.get("alias")), ("run_id", origin.get("run_id")),
                       ("source", loaded.source)):
        if value:
            meta[key] = str(value)
    return meta


class OnnxClassifier(nn.Module):
    """An onnxruntime session as a module: (batch, T, 3, S, S) clips -> logits, as the inference form."""

    inference_form = True  # serving.predict runs it as it is

    def __init__(self, path: str) -> None:
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: clips.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)


def load_onnx_model(path: str, *, source: str | None = None, crop_size: int | None = None) -> LoadedModel:
    """An ONNX file written by `rubiks export` -> LoadedModel (classes, frames and size from its metadata);
    `ModelLoadError` for a file that is not ONNX or lacks the metadata."""
    try:
        model = OnnxClassifier(path)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for any bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"{source or path}: not a readable ONNX model ({first[:200]})") from None
    meta = model.session.get_modelmeta().custom_metadata_map
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ModelLoadError(f"{source or path}: no {', '.join(missing)} in its metadata; export the model with "
                             "`rubiks export MODEL --format onnx --out FILE`, which records them")
    try:
        classes = [str(c) for c in json.loads(meta["classes"])]
        frames, size = int(meta["frames"]), int(meta["size"])
        mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"{source or path}: malformed metadata ({type(exc).__name__}: {str(exc)[:200]})") from None
    if [round(float(x), 6) for x in mean] != list(IMAGENET_MEAN) or [round(float(x), 6) for x in std] != list(IMAGENET_STD):
        raise ModelLoadError(f"{source or path}: normalised with mean {mean} / std {std}; `rubiks predict` feeds "
                             f"the ImageNet mean {list(IMAGENET_MEAN)} / std {list(IMAGENET_STD)}")
    if crop_size is not None and crop_size != size:
        raise ModelLoadError(f"{source or path}: exported for {size}x{size} crops, not --size {crop_size}")
    origin = {"file": os.path.abspath(path), "format": "onnx"}
    for key, name in (("model_name", "name"), ("model_version", "version"), ("model_alias", "alias"),
                      ("run_id", "run_id"), ("architecture", "architecture"), ("source", "exported_from")):
        if meta.get(key):
            origin[name] = meta[key]
    return LoadedModel(model, classes, frames, size, None, source or path, origin)
