"""Manifests (CSV/Parquet, names or indices, bad rows) and the annotation adapters."""
import json
import os

import pytest

from rubiks_service.cli import main
from rubiks_service.data import adapters
from rubiks_service.data.manifest import ManifestError, read_manifest, write_manifest


def test_csv_and_parquet_round_trip(tmp_path):
    rows = [{"path": "a.mp4", "label": "cat", "num_frames": 10}, {"path": "/abs/b.mp4", "label": "dog", "num_frames": 12}]
    for name in ("m.csv", "m.parquet"):
        path = write_manifest(rows, str(tmp_path / name))
        m = read_manifest(path)
        assert m.classes == ["cat", "dog"]
        assert [r.label for r in m.records] == [0, 1]
        assert m.records[0].path == os.path.join(str(tmp_path), "a.mp4") and m.records[1].path == "/abs/b.mp4"
        assert m.records[1].num_frames == 12


def test_integer_labels_and_class_file(tmp_path):
    (tmp_path / "classes.txt").write_text("zero\none\ntwo\n")
    path = write_manifest([{"path": "x.mp4", "label": 2}, {"path": "y.mp4", "label": 7}, {"path": "z.mp4", "label": "one"}],
                          str(tmp_path / "m.csv"))
    m = read_manifest(path, data_root="/data")
    assert [r.label for r in m.records] == [2, 1] and m.records[0].path == "/data/x.mp4"
    assert len(m.skipped) == 1 and "label '7' not in the class list" in m.skipped[0]


def test_missing_columns_and_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("video,cls\na.mp4,1\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['path', 'label'\]"):
        read_manifest(str(bad))
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(str(tmp_path / "nope.csv"))


def test_ssv2(tmp_path):
    labels = {"Pushing something from left to right": "1", "Holding something": "0"}
    split = [{"id": "42", "template": "Pushing [something] from left to right", "label": "pushing pen", "placeholders": ["pen"]},
             {"id": "7", "template": "Holding [something]", "label": "holding cup", "placeholders": ["cup"]}]
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "train.json").write_text(json.dumps(split))
    rows, classes = adapters.something_something_v2(str(tmp_path / "labels.json"), str(tmp_path / "train.json"))
    assert classes == ["Holding something", "Pushing something from left to right"]
    assert rows == [{"path": "42.webm", "label": "Pushing something from left to right"},
                    {"path": "7.webm", "label": "Holding something"}]


def test_tsm_list_and_ssv1(tmp_path):
    (tmp_path / "list.txt").write_text("100218 47 3\n100219 30 0\n")
    (tmp_path / "category.txt").write_text("a\nb\nc\nd\n")
    rows, classes = adapters.something_something_v1(str(tmp_path / "list.txt"), str(tmp_path / "category.txt"))
    assert rows[0] == {"path": "100218", "num_frames": 47, "label": 3} and classes == ["a", "b", "c", "d"]
    (tmp_path / "broken.txt").write_text("100218 forty 3\n")
    with pytest.raises(ManifestError, match=r"broken.txt:1"):
        adapters.tsm_list(str(tmp_path / "broken.txt"))


def test_ucf101(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (tmp_path / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    (tmp_path / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    rows, classes = adapters.ucf101(str(tmp_path / "classInd.txt"), str(tmp_path / "trainlist01.txt"))
    assert rows == [{"path": "Archery/v_Archery_g01_c01.avi", "label": "Archery"}]
    rows, _ = adapters.ucf101(str(tmp_path / "classInd.txt"), str(tmp_path / "testlist01.txt"))
    assert rows[0]["label"] == "ApplyEyeMakeup"


def test_hmdb51(tmp_path):
    (tmp_path / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (tmp_path / "cartwheel_test_split1.txt").write_text("d.avi 1\n")
    rows, classes = adapters.hmdb51(str(tmp_path), split=1, subset="train")
    assert classes == ["brush_hair", "cartwheel"]
    assert rows == [{"path": "brush_hair/a.avi", "label": "brush_hair"}, {"path": "cartwheel/d.avi", "label": "cartwheel"}]
    assert adapters.hmdb51(str(tmp_path), subset="test")[0] == [{"path": "brush_hair/b.avi", "label": "brush_hair"}]


def test_kinetics(tmp_path):
    (tmp_path / "k.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,abc,10,20,train\n")
    rows, classes = adapters.kinetics(str(tmp_path / "k.csv"))
    assert rows == [{"path": "abseiling/abc_000010_000020.mp4", "label": "abseiling"}] and classes == ["abseiling"]


def test_cli_prepare_and_inspect(tmp_path, synth_dir, capsys):
    (tmp_path / "classInd.txt").write_text("1 move_left\n2 move_right\n")
    (tmp_path / "train.txt").write_text("videos/train/move_left/move_left_0000.mp4 1\nmissing.mp4 2\n")
    out = str(tmp_path / "m.csv")
    assert main(["data", "prepare", "ucf101", str(tmp_path / "classInd.txt"), str(tmp_path / "train.txt"), "--out", out, "--json"]) == 0
    capsys.readouterr()
    code = main(["data", "inspect", out, "--data-root", str(synth_dir), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["videos"] == 2 and report["counts_per_class"] == {"move_left": 1, "move_right": 1}
    assert len(report["unreadable"]) == 1 and "missing.mp4" in report["unreadable"][0]["path"]
    assert main(["data", "prepare", "ssv2", str(tmp_path / "nope.json"), str(tmp_path / "x.json"), "--out", out]) == 2
