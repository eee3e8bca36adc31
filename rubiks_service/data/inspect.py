"""Manifest inspection: counts per class and every video that cannot be read."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .manifest import read_manifest
from .video import VideoReadError, num_frames


@dataclass
class InspectReport:
    manifest: str
    videos: int
    classes: int
    counts_per_class: dict[str, int]
    skipped_rows: list[str]
    unreadable: list[dict]
    frames_min: int | None
    frames_max: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_manifest(path: str, *, data_root: str | None = None, classes=None, check_videos: bool = True,
                     progress: bool = True) -> InspectReport:
    from tqdm import tqdm

    manifest = read_manifest(path, data_root=data_root, classes=classes)
    unreadable, lengths = [], []
    if check_videos:
        for record in tqdm(manifest.records, desc="checking videos", disable=not progress):
            try:
                n = num_frames(record.path)
                if n == 0:
                    raise VideoReadError(record.path, "no frames")
                lengths.append(n)
            except VideoReadError as exc:
                unreadable.append({"path": record.path, "error": str(exc)})
    return InspectReport(
        manifest=path,
        videos=len(manifest),
        classes=len(manifest.classes),
        counts_per_class=manifest.counts_per_class(),
        skipped_rows=manifest.skipped,
        unreadable=unreadable,
        frames_min=min(lengths) if lengths else None,
        frames_max=max(lengths) if lengths else None,
    )
