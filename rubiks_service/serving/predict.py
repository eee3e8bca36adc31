"""Classify video files with a trained model (`rubiks predict`).

Each video is decoded with the evaluation protocol's sampling and crops (`data.decoders.read_views`:
1-clip = the segment centres, centre crop; 2-clip = centres and starts x 3 crops, views averaged),
normalised as in evaluation and run through the inference form of the model. A video that cannot
be read is reported on its own; the others are still classified.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch

from rubiks_service.data import ClipMode, ClipSpec, read_views
from rubiks_service.data.transforms import normalize
from rubiks_service.data.video import VideoReadError
from rubiks_service.models.inference import inference_model
from rubiks_service.train.evaluation import view_averaged_logits

from .models import LoadedModel


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def predict_videos(loaded: LoadedModel, videos: Sequence[str], *, protocol: str = ClipMode.ONE_CLIP,
                   topk: int = 5, batch_size: int = 8) -> list[dict]:
    """One result per video, in order: {video, top: [{class, index, probability}], probabilities} or
    {video, error}."""
    spec = ClipSpec(segments=loaded.segments, crop_size=loaded.crop_size, mode=protocol)
    # an ONNX file is the inference form already
    model = loaded.model if getattr(loaded.model, "inference_form", False) else inference_model(loaded.model)
    k = max(1, min(topk, len(loaded.classes)))
    results: list[dict] = []
    for chunk in _chunks(list(videos), batch_size):
        views, rows = [], []
        for video in chunk:
            row = {"video": video}
            results.append(row)
            try:
                if os.path.isdir(video):
                    raise VideoReadError(video, "is a folder, not a video file")
                views.append(torch.from_numpy(read_views(video, spec)))
                rows.append(row)
            except VideoReadError as exc:
                row["error"] = str(exc)
        if not rows:
            continue
        probs = view_averaged_logits(model, normalize(torch.stack(views))).softmax(dim=1)
        top = probs.topk(k, dim=1)
        for row, p, values, indices in zip(rows, probs, top.values, top.indices):
            row["top"] = [{"class": loaded.classes[i], "index": int(i), "probability": float(v)}
                          for v, i in zip(values.tolist(), indices.tolist())]
            row["probabilities"] = [float(x) for x in p.tolist()]
    return results
