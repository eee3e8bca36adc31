"""Manifests: the one table every dataset becomes.

A manifest is a CSV or Parquet table with columns `path,label` and optionally
`num_frames`. `label` is an integer class index or a class name; `path` is
absolute (a full `s3://` URI too) or relative to a data root (default: the
manifest's folder, for an `s3://bucket/data/train.csv` its prefix). The class
list comes from `classes=` (a list or a file with one name per line), else from
`classes.txt` beside the manifest, else from the sorted distinct labels.

A row whose label is not in the class list is skipped with a warning and
counted in `Manifest.skipped`; a table without the required columns is an
error (`ManifestError`) that names what is missing.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rubiks_service import storage

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "label")


class ManifestError(ValueError):
    """A manifest or annotation file that cannot be used, with the reason."""


@dataclass(frozen=True)
class VideoRecord:
    path: str  # absolute: a video file or a folder of JPEG frames
    label: int
    num_frames: int | None = None
    listed_path: str = ""  # as the manifest lists it: names the video wherever the data folder is moved


@dataclass
class Manifest:
    records: list[VideoRecord]
    classes: list[str]
    source: str
    skipped: list[str] = field(default_factory=list)  # one reason per skipped row

    def __len__(self) -> int:
        return len(self.records)

    def counts_per_class(self) -> dict[str, int]:
        counts = {name: 0 for name in self.classes}
        for r in self.records:
            counts[self.classes[r.label]] += 1
        return counts


def read_table(path: str) -> list[dict]:
    """Rows of a CSV or Parquet file (local or `s3://`) as dicts (by extension)."""
    source = _fetch(path) if storage.is_uri(path) else path
    if not storage.is_uri(path) and not os.path.exists(path):
        raise ManifestError(f"manifest not found: {path}")
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(source).to_pylist()
    with open(path, newline="") if source is path else io.TextIOWrapper(source, newline="") as f:
        return list(csv.DictReader(f))


def _fetch(uri: str) -> io.BytesIO:
    """An object's bytes; a storage failure as a ManifestError of one line."""
    try:
        return io.BytesIO(storage.read_bytes(uri))
    except storage.ObjectNotFound:
        raise ManifestError(f"manifest not found: {uri}") from None
    except storage.StorageError as exc:
        raise ManifestError(str(exc)) from None


def write_manifest(rows: Iterable[dict], path: str) -> str:
    """Write rows with path,label[,num_frames] as CSV or Parquet (by extension)."""
    rows = list(rows)
    columns = ["path", "label"] + (["num_frames"] if any(r.get("num_frames") is not None for r in rows) else [])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)
    else:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return path


def read_classes(path: str) -> list[str]:
    with io.TextIOWrapper(_fetch(path)) if storage.is_uri(path) else open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        raise ManifestError(f"duplicate class names in {path}")
    return names


def write_classes(classes: Sequence[str], path: str) -> str:
    with open(path, "w") as f:
        f.write("\n".join(classes) + "\n")
    return path


def _label_index(value, classes: list[str], by_name: dict[str, int]) -> int | None:
    if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit() and value not in by_name):
        index = int(value)
        return index if 0 <= index < len(classes) else None
    return by_name.get(str(value).strip())


def read_manifest(
    path: str, *, data_root: str | None = None, classes: Sequence[str] | str | None = None
) -> Manifest:
    rows = read_table(path)
    if rows:
        missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; a manifest needs {list(REQUIRED_COLUMNS)}")
    folder = storage.parent(path)  # a local folder, or the manifest's prefix in a bucket
    root = data_root or folder
    if isinstance(classes, str):
        class_list = read_classes(classes)
    elif classes is not None:
        class_list = list(classes)
    elif storage.exists(storage.join(folder, "classes.txt")):
        class_list = read_classes(storage.join(folder, "classes.txt"))
    else:
        labels = {str(r["label"]).strip() for r in rows}
        numeric = all(label.lstrip("-").isdigit() for label in labels)
        class_list = [str(i) for i in range(max(int(x) for x in labels) + 1)] if numeric and labels else sorted(labels)
    by_name = {name: i for i, name in enumerate(class_list)}
    records, skipped = [], []
    for line, row in enumerate(rows, start=2):
        label = _label_index(row["label"], class_list, by_name)
        if label is None or not row.get("path"):
            reason = f"{path}:{line}: label {row['label']!r} not in the class list" if label is None else f"{path}:{line}: empty path"
            log.warning("skipping manifest row: %s", reason)
            skipped.append(reason)
            continue
        video = str(row["path"])
        video = video if storage.is_absolute(video) else storage.join(root, video)  # or a full s3:// URI
        frames = row.get("num_frames")
        records.append(VideoRecord(video, label, int(frames) if frames not in (None, "") else None,
                                   listed_path=str(row["path"])))
    return Manifest(records, class_list, path, skipped)
