"""Manifests: the one table every dataset becomes.

A manifest is a CSV or Parquet table with columns `path,label` and optionally
`num_frames`. `label` is an integer class index or a class name; `path` is
absolute (a full `s3://` URI too) or relative to a data root (default: the
manifest's folder, for an `s3://bucket/data/train.csv` its prefix). The class
list comes from `classes=` (a list or a file with one name per line), else from
`classes.txt` beside the manifest, else from the distinct labels present (numbers in numeric order,
names sorted): never from a numeric range, so one row labelled 99999999999 is one class, not 10^11.
A label is looked up by name first, then (an integer) as an index into the class list.

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
from rubiks_service.redact import UserError, one_line

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "label")
MAX_FRAMES = 1_000_000  # a num_frames above this is a typo (an hour at 30 fps is 108 000)
MAX_LABEL_CHARS = 1000


class ManifestError(UserError, ValueError):
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


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _label_index(value, classes: list[str], by_name: dict[str, int]) -> int | None:
    name = str(value).strip()
    if name in by_name:
        return by_name[name]
    if isinstance(value, int) or _is_integer(name):
        index = int(name)
        return index if 0 <= index < len(classes) else None
    return None


def _num_frames(value, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not _is_integer(text) or not 0 < int(text) <= MAX_FRAMES:
        raise ManifestError(f"{where}: num_frames {text[:40]!r} is not a whole number of frames in 1..{MAX_FRAMES}")
    return int(text)


def _unless_unreadable(read, path: str, what: str):
    """`read(path)`, a file that is not `what` (binary, not UTF-8, a folder, bad Parquet) as one ManifestError."""
    try:
        return read(path)
    except ManifestError:
        raise
    except (OSError, ValueError, csv.Error) as exc:  # UnicodeDecodeError and pyarrow's ArrowInvalid are ValueErrors
        raise ManifestError(f"{path}: not {what} ({one_line(exc, limit=200)})") from None


def read_manifest(
    path: str, *, data_root: str | None = None, classes: Sequence[str] | str | None = None
) -> Manifest:
    rows = _unless_unreadable(read_table, path, "a CSV or Parquet manifest")
    if rows:
        missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; a manifest needs {list(REQUIRED_COLUMNS)}")
    folder = storage.parent(path)  # a local folder, or the manifest's prefix in a bucket
    root = data_root or folder
    if isinstance(classes, str):
        class_list = _unless_unreadable(read_classes, classes, "a class list (one name per line)")
    elif classes is not None:
        class_list = list(classes)
    elif storage.exists(storage.join(folder, "classes.txt")):
        class_list = _unless_unreadable(read_classes, storage.join(folder, "classes.txt"), "a class list (one name per line)")
    else:
        labels = {str(r["label"]).strip() for r in rows}
        numeric = all(_is_integer(label) for label in labels)
        class_list = sorted(labels, key=int) if numeric else sorted(labels)
    by_name = {name: i for i, name in enumerate(class_list)}
    records, skipped = [], []
    for line, row in enumerate(rows, start=2):
        if len(str(row["label"])) > MAX_LABEL_CHARS:
            raise ManifestError(f"{path}:{line}: a label of {len(str(row['label']))} characters (at most {MAX_LABEL_CHARS})")
        label = _label_index(row["label"], class_list, by_name)
        if label is None or not row.get("path"):
            reason = f"{path}:{line}: label {row['label']!r} not in the class list" if label is None else f"{path}:{line}: empty path"
            log.warning("skipping manifest row: %s", reason)
            skipped.append(reason)
            continue
        video = str(row["path"])
        video = video if storage.is_absolute(video) else storage.join(root, video)  # or a full s3:// URI
        records.append(VideoRecord(video, label, _num_frames(row.get("num_frames"), f"{path}:{line}"),
                                   listed_path=str(row["path"])))
    return Manifest(records, class_list, path, skipped)
