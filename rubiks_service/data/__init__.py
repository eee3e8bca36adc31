"""Video input: manifests and dataset adapters, decoding, TSN sampling, transforms,
the Ray Data pipeline, and the built-in synthetic motion dataset."""
from .manifest import Manifest, ManifestError, VideoRecord, read_manifest, write_manifest
from .pipeline import ClipSpec, DataQualityError, DataQualityMonitor, build_dataset, clip_batches
from .video import VideoReadError, read_clips, read_frames

__all__ = [
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
    "write_manifest",
]
