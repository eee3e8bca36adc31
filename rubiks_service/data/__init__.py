"""Video input: manifests and dataset adapters, decoding, TSN sampling, transforms, the Ray Data
pipeline, and the built-in synthetic motion dataset.

    manifest.py     the validated table of videos every dataset becomes
    clip_spec.py    clip modes (train, 1clip, 2clip) and how a video becomes the model's views
    decoders.py     video files -> clips, or cached frames -> clips (Ray Data stages)
    ray_dataset.py  a manifest's Ray Dataset (decoded per epoch, or the frame cache)
    quality.py      the consumer side: normalised clips, unusable rows counted and capped
"""
from .clip_spec import ClipMode, ClipSpec
from .decoders import read_views
from .manifest import Manifest, ManifestError, VideoRecord, read_manifest, write_manifest
from .quality import DataQualityError, DataQualityMonitor, clip_batches
from .ray_dataset import build_dataset
from .video import VideoReadError, read_clips, read_frames

__all__ = [
    "ClipMode",
    "ClipSpec",
    "DataQualityError",
    "DataQualityMonitor",
    "Manifest",
    "ManifestError",
    "VideoReadError",
    "VideoRecord",
    "build_dataset",
    "clip_batches",
    "read_clips",
    "read_frames",
    "read_manifest",
    "read_views",
    "write_manifest",
]
