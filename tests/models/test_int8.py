"""int8 export (onnxruntime static quantization of the ONNX graph) for both families: the file is int8
where it should be, onnxruntime runs it close to the fp32 logits, and `rubiks export --int8` calibrates on
the clips of a real manifest of mp4 files."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rubiks_service.models.checkpoint import save_checkpoint
from rubiks_service.models.export import export_model
from rubiks_service.models.inference import inference_model
from rubiks_service.models.quantize import calibration_clips

from .test_export import trained_like

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

FRAMES, SIZE = 4, 32


@pytest.fixture(scope="module")
def synth_manifest(tmp_path_factory):
    from rubiks_service.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    return generate(str(out), SynthConfig(train_per_class=1, val_per_class=0, num_frames=8, size=32),
                    progress=False)["train"]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_int8_export_runs_close_to_fp32(tmp_path):
    """TSM here; RubiksNet through the command line below (one export each keeps the test short)."""
    model = trained_like("tsm-nano", frames=FRAMES)
    gen = torch.Generator().manual_seed(3)
    calibration = [torch.randn(1, FRAMES, 3, SIZE, SIZE, generator=gen).numpy() for _ in range(4)]
    path = str(tmp_path / "int8.onnx")
    summary = export_model(model, path, "onnx", frames=FRAMES, size=SIZE, int8_calibration=calibration,
                           check=False)
    assert summary["int8"] and summary["calibration_clips"] == 4
    proto = onnx.load(path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2]
    assert int8_weights, "no int8 weight in the graph"
    clips = torch.randn(3, FRAMES, 3, SIZE, SIZE, generator=gen)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"clips": clips.numpy()})[0]
    with torch.no_grad():
        expected = inference_model(model)(clips).numpy()
    assert got.shape == expected.shape
    assert _cosine(got, expected) > 0.95  # int8 moves the logits a little, not their pattern

    with pytest.raises(ValueError, match="ONNX format only"):
        export_model(model, str(tmp_path / "x.pt2"), "pt2", int8_calibration=calibration)


def test_calibration_clips_are_eval_views(synth_manifest):
    from rubiks_service.data.manifest import read_manifest

    videos = [r.path for r in read_manifest(synth_manifest).records] + ["/nonexistent.mp4"]
    clips = calibration_clips(videos, FRAMES, SIZE, count=len(videos))
    assert len(clips) == len(videos) - 1  # the unreadable one is skipped
    assert all(c.shape == (1, FRAMES, 3, SIZE, SIZE) and c.dtype == np.float32 for c in clips)
    assert -3 < float(np.mean(clips)) < 3  # normalised, not 0..255


def test_export_cli_int8(tmp_path, synth_manifest):
    release = str(tmp_path / "nano.pth")
    save_checkpoint(release, trained_like("rubiksnet-nano", frames=8, variant="rs-aq"))
    out = str(tmp_path / "nano-int8.onnx")
    cmd = [sys.executable, "-m", "rubiks_service.cli", "export", release, "--format", "onnx", "--out", out,
           "--size", "32", "--int8", "--calib-data", synth_manifest, "--calib-clips", "4", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["int8"] and summary["calibration_clips"] == 4 and summary["path"] == out
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(summary["operators"])
    check = summary["onnxruntime_check"]  # int8 against the fp32 inference form in PyTorch
    assert check["batch"] == 3 and 0 < check["max_rel_diff"] < 0.5

    pt2 = subprocess.run([*cmd[:6], "pt2", "--out", str(tmp_path / "x.pt2"), "--int8"], capture_output=True,
                         text=True, timeout=300)
    assert pt2.returncode == 2 and pt2.stderr.strip() == "rubiks export: --int8 is for --format onnx", pt2.stderr
