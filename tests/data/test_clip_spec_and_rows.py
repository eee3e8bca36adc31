"""Clip modes as one typed thing, and the rows the Ray Dataset is built from (the manifest's parsed
rows, not the CSV read again)."""
import shutil

import numpy as np
import pytest

from rubiks_service.data.clip_spec import ClipMode, ClipSpec, clip_indices
from rubiks_service.data.decoders import UNUSABLE_LABEL, ClipDecoder, FrameDecoder
from rubiks_service.data.manifest import read_manifest
from rubiks_service.data.ray_dataset import manifest_rows


def test_clip_modes_are_their_spellings():
    assert ClipMode("1clip") is ClipMode.ONE_CLIP and ClipMode.TWO_CLIP == "2clip" and f"{ClipMode.TRAIN}" == "train"
    assert [m.views for m in ClipMode] == [1, 1, 6]
    spec = ClipSpec(mode="2clip")
    assert spec.mode is ClipMode.TWO_CLIP and spec.views == 6
    with pytest.raises(ValueError, match="unknown clip mode '3clip'"):
        ClipSpec(mode="3clip")
    assert [len(clip_indices(16, 4, m, np.random.default_rng(0))) for m in ClipMode] == [1, 1, 2]


def test_manifest_rows_are_the_parsed_rows(synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    rows = (data / "val.csv").read_text().splitlines()
    (data / "val.csv").write_text("\n".join(rows + ["videos/ghost.mp4,not_a_class,12"]) + "\n")
    manifest = read_manifest(str(data / "val.csv"))
    (data / "val.csv").unlink()  # nothing reads the table again
    out = manifest_rows(manifest)
    assert len(out) == 9 and out[-1]["label"] == UNUSABLE_LABEL  # the skipped row stays, flagged
    first = rows[1].split(",")[0]
    assert out[0] == {"file": str(data / first), "path": first, "label": manifest.records[0].label}


def test_decoders_flag_rows_they_cannot_use(synth_dir):
    manifest = read_manifest(str(synth_dir / "val.csv"))
    good = manifest_rows(manifest)[0]
    batch = {key: np.array([good[key], "", "/nowhere/missing.mp4"]) for key in ("file", "path")}
    batch["label"] = np.array([good["label"], UNUSABLE_LABEL, 3])
    clips = ClipDecoder(ClipSpec(segments=4, crop_size=32, mode="1clip"))(batch)
    assert clips["valid"].tolist() == [True, False, False] and clips["label"].tolist() == [good["label"], -1, 3]
    assert clips["clip"].shape == (3, 1, 4, 32, 32, 3)
    frames = FrameDecoder(short_side=36)(batch)
    assert frames["valid"].tolist() == [True, False, False] and frames["path"][0] == good["path"]
    assert frames["frames"][0].shape[0] == 12 and min(frames["frames"][0].shape[1:3]) == 36
