"""The trained model as a product: a tracked run logs an MLflow model that loads in a fresh
process; `rubiks predict` classifies real mp4 files like evaluation does (checkpoint, release
checkpoint and runs:/ forms); `rubiks eval` takes the same MODEL forms."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from rubiks_service.cli import main as cli_main
from rubiks_service.data.clip_spec import ClipSpec
from rubiks_service.data.decoders import ClipDecoder
from rubiks_service.data.transforms import normalize
from rubiks_service.models.checkpoint import save_checkpoint
from rubiks_service.models.inference import inference_model
from rubiks_service.tracking.tracked_training import run_tracked_training
from rubiks_service.train.config import load_config
from rubiks_service.train.evaluation import view_averaged_logits
from rubiks_service.train.trainer import evaluate, load_trained_model

from tests.helpers.training import training_config, write_yaml

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, colour_data, ray_cluster):
    """One tracked RS-AQ training run (its checkpoint, run id and tracking URI)."""
    tmp = tmp_path_factory.mktemp("trained")
    storage = str(tmp / "runs")
    tree = training_config(colour_data, storage, name="product", model={"name": "rubiksnet-nano", "variant": "rs-aq"},
                           aq={"budget": 0.5, "weight": 0.1}, eval_protocols=["1clip"])
    cfg = load_config(write_yaml(tmp / "product.yaml", tree))
    uri = "sqlite:///" + os.path.join(storage, "mlflow.db")
    cwd = os.getcwd()
    os.chdir(tmp)  # the SQLite store keeps its artifacts under ./mlruns
    try:
        summary = run_tracked_training(cfg, uri)
    finally:
        os.chdir(cwd)
    ckpt = sorted(p for p in _walk(os.path.join(storage, "product")) if p.endswith("checkpoint.pt"))[-1]
    return {"summary": summary, "uri": uri, "checkpoint": ckpt, "tmp": tmp, "cfg": cfg}


def _served(checkpoint):
    """The checkpoint's model as it is served (RS-AQ hard-maxed to integer shifts, BN folded): what
    predict, eval and the MLflow model compute, and what the run's end-of-run accuracy measures."""
    model, cfg, classes = load_trained_model(checkpoint)
    return inference_model(model), cfg, classes


def _walk(root):
    for folder, _, files in os.walk(root):
        yield from (os.path.join(folder, f) for f in files)


def _val_videos(colour_data):
    with open(colour_data["val"]) as f:
        rows = list(csv.DictReader(f))
    return [(os.path.join(colour_data["root"], r["path"]), r["label"]) for r in rows]


def _eval_probabilities(model, classes, path, label, protocol):
    """What evaluation computes for one video: the decoder's views, normalised, view-averaged logits."""
    decoder = ClipDecoder(ClipSpec(segments=4, crop_size=24, mode=protocol))
    views, _, ok = decoder.decode(path, classes.index(label))
    assert ok
    with torch.no_grad():
        return view_averaged_logits(model.eval(), normalize(torch.from_numpy(views))[None]).softmax(1)[0]


def _predict_json(capsys, *args):
    capsys.readouterr()
    code = cli_main(["predict", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_predict_classifies_like_evaluation_and_reports_bad_files(trained, colour_data, tmp_path, capsys):
    model, cfg, classes = _served(trained["checkpoint"])
    videos = _val_videos(colour_data)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    missing = str(tmp_path / "missing.mp4")
    paths = [p for p, _ in videos]
    code, out = _predict_json(capsys, trained["checkpoint"], paths[0], missing, *paths[1:], str(corrupt),
                              "--topk", "2")
    assert code == 1 and out["failed"] == 2  # the bad files fail, the others are still classified
    rows = {r["video"]: r for r in out["videos"]}
    assert "file not found" in rows[missing]["error"] and "cannot decode" in rows[str(corrupt)]["error"]
    correct = 0
    for path, label in videos:
        top = rows[path]["top"]
        expected = _eval_probabilities(model, classes, path, label, "1clip")
        got = {t["class"]: t["probability"] for t in top}
        assert got == pytest.approx({c: float(expected[i]) for i, c in enumerate(classes)}, rel=1e-4, abs=1e-6)
        correct += top[0]["class"] == label
    # and the same accuracy as the model's own evaluation of the val manifest
    assert correct / len(videos) == pytest.approx(evaluate(model, cfg, classes, "1clip")["1clip_top1"])
    assert correct / len(videos) >= 0.9

    two = _predict_json(capsys, trained["checkpoint"], paths[0], "--protocol", "2clip")[1]["videos"][0]["top"]
    expected = _eval_probabilities(model, classes, paths[0], videos[0][1], "2clip")
    assert {t["class"]: t["probability"] for t in two} == pytest.approx(
        {c: float(expected[i]) for i, c in enumerate(classes)}, rel=1e-4, abs=1e-6)


def test_release_format_checkpoint_predicts_the_same(trained, colour_data, tmp_path, capsys):
    model, _, classes = load_trained_model(trained["checkpoint"])
    release = tmp_path / "release.pth"
    save_checkpoint(release, model)  # tier, variant, frames, weights: no classes, no input size
    path = _val_videos(colour_data)[0][0]
    _, from_training = _predict_json(capsys, trained["checkpoint"], path)
    code, from_release = _predict_json(capsys, str(release), path, "--size", "24")
    assert code == 0 and from_release["frames"] == 4 and from_release["size"] == 24
    names = {c: str(i) for i, c in enumerate(classes)}  # a release checkpoint names classes by index
    assert [(names[t["class"]], pytest.approx(t["probability"], rel=1e-5))
            for t in from_training["videos"][0]["top"]] == [(t["class"], t["probability"])
                                                            for t in from_release["videos"][0]["top"]]

    # `rubiks eval` takes it too: the manifest's classes (same count), the input size given
    proc = subprocess.run([sys.executable, "-m", "rubiks_service.cli", "eval", str(release), "--size", "24",
                           "--data", colour_data["val"], "--protocol", "1clip", "--json"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_ADDRESS": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["1clip_top1"] == pytest.approx(trained["summary"]["1clip_top1"])


def test_mlflow_model_loads_in_a_fresh_process(trained, tmp_path):
    run_id = trained["summary"]["run_id"]
    assert trained["summary"]["model_uri"] == f"runs:/{run_id}/model"
    model, _, classes = _served(trained["checkpoint"])
    clips = torch.randn(3, 4, 3, 24, 24)
    np.save(tmp_path / "clips.npy", clips.numpy())
    script = (
        "import json, sys, mlflow, numpy as np\n"
        f"mlflow.set_tracking_uri({trained['uri']!r})\n"
        f"m = mlflow.pyfunc.load_model('runs:/{run_id}/model')\n"
        f"out = m.predict(np.load({str(tmp_path / 'clips.npy')!r}))\n"
        "print(json.dumps({'columns': list(out.columns), 'values': out.values.tolist()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=trained["tmp"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["columns"] == classes
    with torch.no_grad():
        expected = model(clips).softmax(1)
    assert np.allclose(out["values"], expected.numpy(), rtol=1e-4, atol=1e-6)
    assert np.allclose(np.sum(out["values"], axis=1), 1.0)


def test_predict_and_eval_take_a_runs_uri(trained, colour_data, capsys):
    run_uri = trained["summary"]["model_uri"]
    path = _val_videos(colour_data)[0][0]
    cwd, env_uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(trained["tmp"])
    try:
        code, via_mlflow = _predict_json(capsys, run_uri, path, "--tracking-uri", trained["uri"])
    finally:
        os.chdir(cwd)
    # fetching the model leaves the process's tracking store as it was (later runs must not log there)
    assert os.environ.get("MLFLOW_TRACKING_URI") == env_uri
    _, via_file = _predict_json(capsys, trained["checkpoint"], path)
    assert code == 0 and via_mlflow["model"] == run_uri
    assert via_mlflow["videos"][0]["top"][0]["class"] == via_file["videos"][0]["top"][0]["class"]
    assert via_mlflow["videos"][0]["top"][0]["probability"] == pytest.approx(
        via_file["videos"][0]["top"][0]["probability"], rel=1e-5)

    proc = subprocess.run([sys.executable, "-m", "rubiks_service.cli", "eval", run_uri, "--data", colour_data["val"],
                           "--tracking-uri", trained["uri"], "--json"],
                          capture_output=True, text=True, timeout=600, cwd=trained["tmp"],
                          env={**os.environ, "RAY_ADDRESS": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["1clip_top1"] == pytest.approx(trained["summary"]["1clip_top1"])

    bad = subprocess.run([sys.executable, "-m", "rubiks_service.cli", "predict", "runs:/0123456789abcdef/model", path,
                          "--tracking-uri", trained["uri"]], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
