"""scripts/gpu_check.sh, the one-call GPU check: its dry run (CPU only) walks every step with
ray and mlflow blocked, and writes the summary and the model benchmark's JSON where asked;
bad arguments get one line and exit 2; the CUDA-case rule reads a JUnit file."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.reference import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "scripts", "gpu_check.sh")
spec = importlib.util.spec_from_file_location("gpu_check_lib", os.path.join(REPO_ROOT, "scripts", "gpu_check_lib.py"))
lib = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lib)


def _run(*args, env=None, timeout=300):
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    proc = _run(str(out), env={"GPU_CHECK_DRY_RUN": "1", "OUT": str(out / "not-this-one")})
    return proc, out


def test_dry_run_walks_every_step(dry_run):
    proc, out = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] and summary["ok"]
    steps = {s["step"]: s for s in summary["steps"]}
    assert list(steps) == ["preflight", "build", "imports", "pytest", "bench-shift", "bench-models"]
    assert {s["status"] for s in steps.values()} <= {"ok", "dry-run"}, steps
    assert "TORCH_CUDA_ARCH_LIST=9.0" in steps["build"]["detail"] and "build_ext --inplace" in steps["build"]["detail"]
    # the argument wins over $OUT; only the files a device call can bring back are written there
    assert not (out / "not-this-one").exists()
    assert {p.name for p in out.iterdir()} == {"summary.json", "gpu_check.log", "models-gpu.json"}


def test_dry_run_blocks_ray_and_mlflow(dry_run):
    proc, out = dry_run
    machine = json.loads((out / "summary.json").read_text())["machine"]
    # installed here, unimportable in every Python the check starts (the GPU machine lacks them)
    assert importlib.util.find_spec("ray") is not None and importlib.util.find_spec("mlflow") is not None
    assert machine["blocked_importable"] == [] and machine["modules_missing"] == []
    log = (out / "gpu_check.log").read_text()
    assert '"blocked_loaded": []' in log and '"ok": true' in log
    # the test modules were collected with ray and mlflow blocked, the CUDA cases among them
    assert "tests collected" in log and "tests/ops/test_cuda.py::test_matches_cpu" in log


def test_dry_run_model_benchmark_json(dry_run):
    _, out = dry_run
    result = json.loads((out / "models-gpu.json").read_text())
    assert result["setup"]["device"] == "cpu" and result["setup"]["batch"] == 2
    for phase in ("inference", "train"):
        assert set(result[phase]["latency"]) == {f"rubiksnet-nano/{phase}", f"tsm-nano/{phase}"}
        assert all(row["min_ms"] > 0 for row in result[phase]["latency"].values())


@pytest.mark.parametrize("args,message", [
    (["a", "b"], "one argument at most"),
    (["--fast"], "unknown option --fast"),
    (["/proc/gpu-check"], "cannot write to the output folder"),
])
def test_bad_arguments_one_line_exit_2(args, message):
    proc = _run(*args, timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_cuda_case_rule(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.ops.test_forward" name="test_x[cpu]"/>'
        '<testcase classname="tests.ops.test_forward" name="test_x[cuda]"/>'
        '<testcase classname="tests.ops.test_cuda" name="test_matches_cpu[a]"><failure message="m"/></testcase>'
        '<testcase classname="tests.models.test_registry" name="test_y[cpu]"><skipped message="s"/></testcase>'
        "</testsuite></testsuites>")
    result = lib.cuda_cases(str(junit))
    assert result["ok"] and result["cuda"] == {"passed": 1, "failed": 1, "skipped": 0}
    assert result["all"] == {"passed": 2, "failed": 1, "skipped": 1}
    junit.write_text(junit.read_text().replace(
        'name="test_x[cuda]"/>', 'name="test_x[cuda]"><skipped message="needs a CUDA device"/></testcase>'))
    result = lib.cuda_cases(str(junit))
    assert not result["ok"] and result["cuda_skipped"] == [
        {"case": "tests.ops.test_forward::test_x[cuda]", "reason": "needs a CUDA device"}]
    assert lib.arch_list((9, 0)) == "9.0" and lib.arch_list((8, 6)) == "8.6"


def test_summary_marks_a_failed_step(tmp_path):
    steps = tmp_path / "steps.tsv"
    steps.write_text("build\tok\t0\t3.5\tx\npytest\ttimeout\t124\t270.0\ty\n")
    (tmp_path / "shift.json").write_text(json.dumps({"goals": [{"ratio": "op_forward_vs_clone", "met": True}]}))
    result = lib.summary(str(steps), str(tmp_path / "summary.json"),
                         [f"shift_goals={tmp_path / 'shift.json'}@goals", f"gone={tmp_path / 'none.json'}"])
    assert not result["ok"] and result["steps"][1] == {"step": "pytest", "status": "timeout", "rc": 124,
                                                       "seconds": 270.0, "detail": "y"}
    assert result["shift_goals"][0]["met"] and "unreadable" in result["gone"]
    assert json.loads(Path(tmp_path / "summary.json").read_text()) == result


def test_shift_benchmark_goals_at_the_table_a2_input():
    sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))
    try:
        import bench_shift_gpu
    finally:
        sys.path.remove(os.path.join(REPO_ROOT, "bench"))
    ratios = {"op_forward_vs_clone": 1.2, "op_fwd_bwd_vs_clone": 4.5, "conv3d_block_vs_rubiks_block_forward": 9.5,
              "tsm_block_vs_rubiks_block_forward": 3.9}
    rows = [{"shape_NTCHW": [8, 8, 72, 56, 56], "dtype": "bfloat16", "ratios": ratios},
            {"shape_NTCHW": [32, 8, 144, 56, 56], "dtype": "bfloat16", "ratios": ratios}]
    goals = {g["ratio"]: (g["met"], g["bar"]) for g in bench_shift_gpu._goals(rows)}
    assert goals == {"op_forward_vs_clone": (True, "<= 1.5"), "op_fwd_bwd_vs_clone": (False, "<= 4.0"),
                     "conv3d_block_vs_rubiks_block_forward": (True, ">= 8.9"),
                     "tsm_block_vs_rubiks_block_forward": (False, ">= 4.0")}
