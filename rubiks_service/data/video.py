"""Reading frames: video files with decord, JPEG-frame folders with PIL.

A path is local or an `s3://` URI (`rubiks_service.storage`): an object is fetched whole (with the
storage's retries) and decord decodes it from memory; a frame folder there is a prefix of images.

Every failure (missing file or key, denied bucket, zero-length, truncated or corrupt stream, bad
index) becomes a `VideoReadError` naming the path, so callers can skip the video and count it
instead of dying.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np

from rubiks_service import storage

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


class VideoReadError(RuntimeError):
    """A video that cannot be read; `path` says which."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


def _frame_files(folder: str) -> list[str]:
    if storage.is_uri(folder):
        return storage.list_files(folder, FRAME_EXTENSIONS)
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(FRAME_EXTENSIONS))
    return [os.path.join(folder, f) for f in files]


def _load(path: str) -> tuple[str, list[str] | str | bytes]:
    """What `path` holds: ("frames", its image files) for a frame folder, else ("video", what decord
    opens: the local path, or an object's bytes)."""
    if not storage.is_uri(path):
        if os.path.isdir(path):
            return "frames", _frame_files(path)
        if not os.path.exists(path):
            raise VideoReadError(path, "file not found")
        if os.path.getsize(path) == 0:
            raise VideoReadError(path, "empty file")
        return "video", path
    try:
        try:
            data = storage.read_bytes(path)
        except storage.ObjectNotFound:  # no such object: perhaps a prefix of frame images
            files = _frame_files(path)
            if not files:
                raise
            return "frames", files
    except storage.StorageError as exc:
        raise VideoReadError(path, exc.cause) from None
    if not data:
        raise VideoReadError(path, "empty file")
    return "video", data


def num_frames(path: str) -> int:
    """Frame count of a video file or a frame folder."""
    kind, what = _load(path)
    return len(what) if kind == "frames" else len(_open(path, what))


def _open(path: str, source: str | bytes, short_side: int | None = None):
    """A decord reader of `source` (`_load`'s video: a path or the bytes of `path`)."""
    import decord

    def reader(**size):
        return decord.VideoReader(io.BytesIO(source) if isinstance(source, bytes) else source, num_threads=1, **size)

    try:
        width = height = -1
        if short_side:
            probe = reader()
            h, w = probe[0].shape[:2]
            scale = short_side / min(h, w)
            width, height = max(1, round(w * scale)), max(1, round(h * scale))
        return reader(width=width, height=height)
    except VideoReadError:
        raise
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError kinds
        raise VideoReadError(path, f"cannot decode ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc


def read_clips(path: str, choose: Callable[[int], list[np.ndarray]], short_side: int | None = None) -> list[np.ndarray]:
    """Open a video once, let `choose(num_frames)` pick the frame indices of each clip, and
    decode them in one batch: a list of (T, H, W, 3) uint8 clips, resized at decode time
    so the short side is `short_side` when given."""
    kind, what = _load(path)
    if kind == "frames":
        if not what:
            raise VideoReadError(path, "no frame images in folder")
        clips = choose(len(what))
        return [_read_folder(what, idx, short_side) for idx in clips]
    reader = _open(path, what, short_side)
    total = len(reader)
    if total == 0:
        raise VideoReadError(path, "no frames")
    clips = [np.minimum(np.asarray(idx, dtype=np.int64), total - 1) for idx in choose(total)]
    try:
        frames = reader.get_batch(np.concatenate(clips).tolist()).asnumpy()
    except Exception as exc:  # truncated files fail here, at the first missing packet
        raise VideoReadError(path, f"cannot decode frames ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    return np.split(frames, np.cumsum([len(c) for c in clips])[:-1])


def read_frames(path: str, indices: np.ndarray, short_side: int | None = None) -> np.ndarray:
    """Frames at `indices` as (len(indices), H, W, 3) uint8 (see `read_clips`)."""
    return read_clips(path, lambda n: [np.asarray(indices)], short_side)[0]


def _read_folder(files: list[str], indices: np.ndarray, short_side: int | None) -> np.ndarray:
    from PIL import Image

    frames = []
    for i in np.minimum(np.asarray(indices, dtype=np.int64), len(files) - 1):
        try:
            with Image.open(io.BytesIO(storage.read_bytes(files[i])) if storage.is_uri(files[i]) else files[i]) as im:
                im = im.convert("RGB")
                if short_side:
                    scale = short_side / min(im.size)
                    im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.BILINEAR)
                frames.append(np.asarray(im))
        except OSError as exc:
            raise VideoReadError(files[i], f"cannot read frame ({exc})") from exc
    return np.stack(frames)
