"""Adapters from the standard annotation files to manifests (rows of path,label[,num_frames]).

Each returns (rows, classes). Paths are relative to the dataset's video/frame
root, which the manifest is later read with (`data_root`).
"""
from __future__ import annotations

import csv
import json
import os
import re

from .manifest import ManifestError

Rows = list[dict]


def _load_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read annotation file {path}: {exc}") from exc


def something_something_v2(labels_json: str, split_json: str, extension: str = ".webm") -> tuple[Rows, list[str]]:
    """SSv2: labels JSON {template: "index"} and a train/validation JSON list of
    {"id", "template", "label", "placeholders"}; the class is the template with its
    brackets removed ("Pushing [something] from left to right" -> "Pushing something ...")."""
    labels = _load_json(labels_json)
    if not isinstance(labels, dict):
        raise ManifestError(f"{labels_json}: expected an object mapping template text to class index")
    classes = [name for name, _ in sorted(labels.items(), key=lambda kv: int(kv[1]))]
    rows = []
    for i, item in enumerate(_load_json(split_json)):
        if "id" not in item or "template" not in item:
            raise ManifestError(f"{split_json}: entry {i} lacks 'id' or 'template'")
        template = item["template"].replace("[", "").replace("]", "")
        rows.append({"path": f"{item['id']}{extension}", "label": template})
    return rows, classes


def tsm_list(list_file: str, classes: list[str] | None = None) -> tuple[Rows, list[str]]:
    """The TSM list format (Something-Something v1 and others): `path num_frames label` per line;
    `path` is a folder of 1-indexed JPEG frames."""
    rows = []
    with open(list_file) as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 3 or not parts[-1].lstrip("-").isdigit() or not parts[-2].isdigit():
                raise ManifestError(f"{list_file}:{line_no}: expected 'path num_frames label', got {line.strip()!r}")
            rows.append({"path": " ".join(parts[:-2]), "num_frames": int(parts[-2]), "label": int(parts[-1])})
    if classes is None:
        classes = [str(i) for i in range(max((r["label"] for r in rows), default=-1) + 1)]
    return rows, classes


def something_something_v1(list_file: str, category_file: str | None = None) -> tuple[Rows, list[str]]:
    """SSv1 as distributed by TSM: a list file plus `category.txt` (one class per line)."""
    classes = None
    if category_file:
        with open(category_file) as f:
            classes = [line.strip() for line in f if line.strip()]
    return tsm_list(list_file, classes)


def ucf101(class_index: str, split_file: str) -> tuple[Rows, list[str]]:
    """UCF-101: classInd.txt (`1 ApplyEyeMakeup`) and a train/test list; train lines carry a
    1-based label, test lines do not (the class is the folder name)."""
    classes = []
    with open(class_index) as f:
        for line in f:
            if line.strip():
                index, name = line.split()
                if int(index) != len(classes) + 1:
                    raise ManifestError(f"{class_index}: class indices must run 1, 2, 3, ...")
                classes.append(name)
    rows = []
    with open(split_file) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            label = classes[int(parts[1]) - 1] if len(parts) > 1 else parts[0].split("/")[0]
            rows.append({"path": parts[0], "label": label})
    return rows, classes


def hmdb51(split_dir: str, split: int = 1, subset: str = "train") -> tuple[Rows, list[str]]:
    """HMDB-51: `<class>_test_split<k>.txt` files of `video.avi tag` lines, tag 1 = train,
    2 = test, 0 = unused. Videos live in `<class>/video.avi`."""
    tag = {"train": "1", "test": "2"}[subset]
    pattern = re.compile(rf"^(.+)_test_split{split}\.txt$")
    files = sorted(f for f in os.listdir(split_dir) if pattern.match(f))
    if not files:
        raise ManifestError(f"{split_dir}: no *_test_split{split}.txt files")
    classes = [pattern.match(f).group(1) for f in files]
    rows = []
    for name, fname in zip(classes, files):
        with open(os.path.join(split_dir, fname)) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] == tag:
                    rows.append({"path": f"{name}/{parts[0]}", "label": name})
    return rows, classes


def kinetics(csv_file: str, extension: str = ".mp4") -> tuple[Rows, list[str]]:
    """Kinetics CSV (`label,youtube_id,time_start,time_end,split`): videos stored as
    `<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`."""
    rows = []
    with open(csv_file, newline="") as f:
        reader = csv.DictReader(f)
        need = {"label", "youtube_id", "time_start", "time_end"}
        if not need <= set(reader.fieldnames or ()):
            raise ManifestError(f"{csv_file}: needs columns {sorted(need)}, has {reader.fieldnames}")
        for r in reader:
            start, end = int(float(r["time_start"])), int(float(r["time_end"]))
            rows.append({"path": f"{r['label']}/{r['youtube_id']}_{start:06d}_{end:06d}{extension}", "label": r["label"]})
    return rows, sorted({r["label"] for r in rows})


ADAPTERS = {
    "ssv2": something_something_v2,
    "ssv1": something_something_v1,
    "tsm-list": tsm_list,
    "ucf101": ucf101,
    "hmdb51": hmdb51,
    "kinetics": kinetics,
}
