"""Export: the shift as gathers and weighted sums (same logits as the inference form), ONNX in
standard operators that onnxruntime runs with PyTorch's logits at a dynamic batch size, pt2 that
torch.export.load reads back in a fresh process, and `rubiks export` on a release checkpoint."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from rubiks_service.models import build_model
from rubiks_service.models.checkpoint import save_checkpoint
from rubiks_service.models.export import ONNX_OPSET, GatherShift, check_onnx, export_form, export_onnx, export_pt2
from rubiks_service.models.inference import inference_model
from rubiks_service.ops.attention_shift import TemporalAttentionShift

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

VARIANTS = [("rs", {}), ("rs-q", {}), ("rs-aq", {}), ("rs", {"temporal_shift": False})]


def trained_like(name: str, frames: int = 8, **kwargs) -> torch.nn.Module:
    """A model with what training leaves behind: BN statistics, fractional and out-of-range shifts,
    peaked attention."""
    gen = torch.Generator().manual_seed(1)
    model = build_model(name, num_classes=7, num_frames=frames, **kwargs).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=gen) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
            module.bias.data.copy_(torch.rand(module.bias.shape, generator=gen) * 0.2 - 0.1)
        elif isinstance(module, TemporalAttentionShift):
            module.weight.data.copy_(torch.randn(module.weight.shape, generator=gen))
        elif isinstance(getattr(module, "shift", None), torch.nn.Parameter):
            module.shift.data.copy_(torch.rand(module.shift.shape, generator=gen) * 6 - 3)
    return model


@pytest.mark.parametrize("name", ["rubiksnet-nano", "rubiksnet-micro", "tsm-nano"])
@pytest.mark.parametrize("variant,extra", VARIANTS)
def test_gather_form_matches_the_inference_form(name, variant, extra):
    kwargs = {} if name.startswith("tsm") else {"variant": variant, **extra}
    if name.startswith("tsm") and (variant, extra) != VARIANTS[0]:
        pytest.skip("TSM has one variant")
    model = trained_like(name, frames=4, **kwargs)
    graph = export_form(model, 4, 40)
    assert any(isinstance(m, GatherShift) for m in graph.modules())
    assert not any(type(m).__name__ in ("RubiksShift3d", "RubiksShift2d", "TemporalAttentionShift")
                   for m in graph.modules())
    clips = torch.randn(3, 4, 3, 40, 40)
    with torch.no_grad():
        expected = inference_model(model)(clips)
        torch.testing.assert_close(graph(clips), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def _standard_only(path):
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"} and not proto.functions
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # dynamic
    return {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("tier", ["nano", "micro"])
@pytest.mark.parametrize("variant,extra", VARIANTS)
def test_onnx_runs_in_onnxruntime_with_pytorch_logits(tmp_path, tier, variant, extra):
    if tier == "micro" and extra:
        pytest.skip("the per-frame baseline is checked at nano")
    model = trained_like(f"rubiksnet-{tier}", variant=variant, **extra)
    path = str(tmp_path / "model.onnx")
    info = export_onnx(model, path, frames=8, size=224)  # the paper's input
    ops = _standard_only(path)
    assert "Gather" in ops and info["opset"] == ONNX_OPSET
    for batch in (1, 3):  # exported with a batch of 2
        check = check_onnx(path, model, frames=8, size=224, batch=batch)
        assert check["max_rel_diff"] < 1e-4, check


def test_onnx_spot_check_tiny_rs_aq(tmp_path):
    model = trained_like("rubiksnet-tiny", variant="rs-aq")
    path = str(tmp_path / "tiny.onnx")
    export_onnx(model, path, frames=8, size=224)
    _standard_only(path)
    assert check_onnx(path, model, frames=8, size=224, batch=3)["max_rel_diff"] < 1e-4


def test_pt2_keeps_the_registered_ops_and_loads_in_a_fresh_process(tmp_path):
    model = trained_like("rubiksnet-nano", variant="rs-aq")
    path = str(tmp_path / "model.pt2")
    info = export_pt2(model, path, frames=8, size=64)
    assert info["rubiks_ops"] == ["rubiks.shift2d.default", "rubiks.shift3d.default"]
    clips = torch.randn(3, 8, 3, 64, 64)
    np.save(tmp_path / "clips.npy", clips.numpy())
    with torch.no_grad():
        np.save(tmp_path / "expected.npy", inference_model(model)(clips).numpy())
    script = (
        "import numpy as np, torch\n"
        "import rubiks_service.ops  # registers torch.ops.rubiks.*\n"
        f"program = torch.export.load({path!r})\n"
        f"out = program.module()(torch.from_numpy(np.load({str(tmp_path / 'clips.npy')!r})))\n"
        f"expected = np.load({str(tmp_path / 'expected.npy')!r})\n"
        "print(float(abs(out.detach().numpy() - expected).max()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float(proc.stdout.strip().splitlines()[-1]) < 1e-5


def test_export_cli_takes_a_release_checkpoint(tmp_path):
    model = trained_like("rubiksnet-nano", variant="rs-q")
    release = str(tmp_path / "release.pth")
    save_checkpoint(release, model)
    out = str(tmp_path / "nano.onnx")
    cmd = [sys.executable, "-m", "rubiks_service.cli", "export", release, "--format", "onnx", "--out", out,
           "--size", "96", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # stdout is only the JSON
    assert summary["opset"] == ONNX_OPSET and summary["domains"] == ["ai.onnx"] and os.path.getsize(out) > 0
    assert summary["onnxruntime_check"]["max_rel_diff"] < 1e-4
    _standard_only(out)

    bad = subprocess.run([*cmd[:8], str(tmp_path / "nowhere" / "x.onnx")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    frames = subprocess.run([*cmd[:9], "--frames", "16"], capture_output=True, text=True, timeout=300)
    assert frames.returncode == 2 and "8 frames" in frames.stderr, frames.stderr
