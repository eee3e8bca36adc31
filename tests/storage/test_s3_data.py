"""Object storage without Ray: manifests and videos read from a real S3 server (moto's), and every
storage failure a user can cause (missing key, denied bucket, wrong credentials, wrong endpoint) as
one line with a non-zero exit and no secret in it."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from rubiks_service import storage
from rubiks_service.cli import main
from rubiks_service.data.manifest import ManifestError, read_manifest
from rubiks_service.data.video import VideoReadError, num_frames, read_clips, read_frames

from tests.helpers.s3 import free_port
from tests.helpers.training import training_config, write_yaml


def test_a_manifest_in_a_bucket_lists_videos_relative_to_its_prefix_or_by_full_uri(s3_env, s3_colours):
    train = read_manifest(s3_colours["train"])
    assert train.classes == ["red", "blue"]  # classes.txt beside it, in the bucket
    assert {r.path for r in train.records} == {f"{s3_colours['prefix']}/{r.listed_path}" for r in train.records}
    assert len(train) == 12 and all(r.path.startswith(s3_colours["prefix"] + "/videos/train/") for r in train.records)
    val = read_manifest(s3_colours["val"])
    assert all(r.path == r.listed_path and r.path.startswith("s3://") for r in val.records)


def test_videos_decode_from_the_bucket_as_from_disk(s3_env, s3_colours):
    record = read_manifest(s3_colours["train"]).records[0]
    local = os.path.join(s3_colours["local"]["root"], record.listed_path)
    idx = np.array([0, 3, 7])
    np.testing.assert_array_equal(read_frames(record.path, idx, short_side=40), read_frames(local, idx, short_side=40))
    assert num_frames(record.path) == 8


def test_a_frame_folder_in_a_bucket_is_a_prefix_of_images(s3_env):
    frames = (np.arange(4 * 16 * 16 * 3) % 251).astype(np.uint8).reshape(4, 16, 16, 3)
    for i, frame in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG")
        s3_env.put(f"framefolder/clip/{i:05d}.png", buf.getvalue())
    folder = f"s3://{s3_env.bucket}/framefolder/clip"
    assert num_frames(folder) == 4
    np.testing.assert_array_equal(read_clips(folder, lambda n: [np.array([1, 3])])[0], frames[[1, 3]])


def _one_line_without_secrets(err: str, server) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert server.secret not in err and server.key_id not in err
    return lines[0]


@pytest.mark.parametrize("case, expected", [
    ("missing key", "no such key"),
    ("denied bucket", "access denied"),
    ("wrong secret", "credentials refused"),
    ("unknown key id", "credentials refused"),
])
def test_storage_failures_name_the_uri_and_the_cause(s3_env, monkeypatch, case, expected):
    uri = {"missing key": f"s3://{s3_env.bucket}/no/such.mp4", "denied bucket": f"s3://{s3_env.locked}/a.mp4"}.get(
        case, f"s3://{s3_env.bucket}/colours/train.csv")
    if case == "wrong secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + s3_env.secret[:4])
    if case == "unknown key id":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    with pytest.raises(storage.StorageError) as caught:
        storage.read_bytes(uri)
    message = _one_line_without_secrets(str(caught.value), s3_env)
    assert message == f"cannot read {uri}: {expected}" + (" (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                                                          if expected == "credentials refused" else "")
    with pytest.raises(VideoReadError, match=expected):  # a video that cannot be fetched is skipped, named
        read_clips(uri, lambda n: [np.arange(n)])


def test_a_missing_manifest_is_a_manifest_error(s3_env):
    with pytest.raises(ManifestError, match=r"manifest not found: s3://rubiks/nothing/train\.csv"):
        read_manifest(f"s3://{s3_env.bucket}/nothing/train.csv")


def _train_config(tmp_path, s3_colours, storage_path="s3://rubiks/runs", **data) -> str:
    tree = training_config(s3_colours["local"], storage_path, name="refused")
    tree["data"].update({"train_manifest": s3_colours["train"], "val_manifest": s3_colours["val"], **data})
    return write_yaml(tmp_path / "refused.yaml", tree)


@pytest.mark.parametrize("case, expected", [
    ("missing manifest", "rubiks train: cannot read s3://rubiks/colours/missing.csv: no such key"),
    ("denied storage bucket", "rubiks train: cannot write under s3://locked/runs: access denied"),
    ("bad credentials", "rubiks train: cannot read s3://rubiks/colours/train.csv: credentials refused"),
    ("wrong endpoint", "rubiks train: cannot read s3://rubiks/colours/train.csv: cannot reach the endpoint at "
                       "http://127.0.0.1:"),
    ("no tracking store", "rubiks train: storage_path s3://rubiks/runs is in object storage"),
])
def test_rubiks_train_refuses_unusable_storage_in_one_line(tmp_path, s3_env, s3_colours, monkeypatch, capsys,
                                                           case, expected):
    argv = ["train", _train_config(tmp_path, s3_colours), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    if case == "missing manifest":
        argv[1] = _train_config(tmp_path, s3_colours, train_manifest="s3://rubiks/colours/missing.csv")
    elif case == "denied storage bucket":
        argv[1] = _train_config(tmp_path, s3_colours, storage_path="s3://locked/runs")
    elif case == "bad credentials":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong" + s3_env.secret[5:])
    elif case == "wrong endpoint":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    else:
        argv = argv[:2]
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(argv) == 2
    out = capsys.readouterr()
    assert _one_line_without_secrets(out.err, s3_env).startswith(expected)


def test_rubiks_predict_names_a_missing_model_object(s3_env, s3_colours, capsys):
    assert main(["predict", "s3://rubiks/models/nothing.pt", f"{s3_colours['prefix']}/videos/val/red_0.mp4"]) == 2
    line = _one_line_without_secrets(capsys.readouterr().err, s3_env)
    assert line == "rubiks predict: cannot read s3://rubiks/models/nothing.pt: no such key"
