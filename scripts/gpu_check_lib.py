"""The Python half of scripts/gpu_check.sh: what the machine has, which CUDA test cases ran,
and the summary JSON. Imports torch only where it must (the `preflight` command).

    python scripts/gpu_check_lib.py preflight [--out F]        # JSON: GPU, arch list, tools, modules
    python scripts/gpu_check_lib.py build-plan                 # the extension setup.py would build
    python scripts/gpu_check_lib.py imports [--require-cuda]   # ops/models import, no blocked package
    python scripts/gpu_check_lib.py cuda-cases JUNIT [--out F] # JSON; exit 1 if a CUDA case skipped
    python scripts/gpu_check_lib.py summary STEPS_TSV OUT_JSON [--extra NAME=FILE[@KEY.KEY] ...]
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

# what `pytest tests/ops tests/models` itself needs beyond torch (tests/conftest.py, test modules)
TEST_MODULES = ("pytest", "hypothesis", "numpy", "yaml")
# a test case is a CUDA case when its id names CUDA: the `cuda` device parameter, tests/ops/test_cuda*.py
CUDA_CASE = re.compile(r"cuda", re.IGNORECASE)


def arch_list(capability: tuple[int, int]) -> str:
    """TORCH_CUDA_ARCH_LIST for one GPU: its compute capability, e.g. (9, 0) -> "9.0"."""
    major, minor = capability
    return f"{major}.{minor}"


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a blocked name (scripts/gpu_check_guard) or a broken package
        return False


def _tool_version(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[-1] if out else ""


def cuda_home() -> str | None:
    """The CUDA toolkit's root for the build: $CUDA_HOME, else where nvcc itself says it lives
    (`nvcc -dryrun` prints TOP=<bin>/..): torch would guess the parent of the nvcc on PATH,
    wrong where that is a wrapper script such as /usr/local/bin/nvcc."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    if not shutil.which("nvcc"):
        return None
    try:
        out = subprocess.run(["nvcc", "-dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"^#\$ TOP=(.+)$", out.stderr + out.stdout, re.MULTILINE)
    return os.path.realpath(found.group(1).strip()) if found else None


def preflight(require_gpu: bool = False) -> dict:
    import torch

    info = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cores": os.cpu_count(),
        "nvcc": _tool_version(["nvcc", "--version"]),
        "cuda_home": cuda_home(),
        "ninja": _tool_version(["ninja", "--version"]),
        "modules_missing": [m for m in TEST_MODULES if not _module_present(m)],
        "blocked_importable": [m for m in os.environ.get("GPU_CHECK_BLOCK", "").split() if _module_present(m)],
        "xdist": _module_present("xdist"),
        "pytest_timeout": _module_present("pytest_timeout"),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        capability = torch.cuda.get_device_capability(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                    capability=list(capability), arch_list=arch_list(capability),
                    gpu_memory_GiB=round(props.total_memory / 2**30, 1))
    info["ok"] = not info["modules_missing"] and not info["blocked_importable"] and (
        not require_gpu or ("gpu" in info and info["nvcc"] is not None and info["torch_cuda"] is not None))
    return info


def build_plan(setup_py: str = "setup.py") -> dict:
    """The extension setup.py declares (RUBIKS_WITH_CUDA as set), without building it."""
    import runpy
    from unittest import mock

    import setuptools
    from torch.utils import cpp_extension

    note = "CUDA sources forced in (RUBIKS_WITH_CUDA=1)"
    if cpp_extension.CUDA_HOME is None:  # no CUDA toolkit where torch looks: the CPU extension's plan
        os.environ["RUBIKS_WITH_CUDA"] = "0"
        note = "no CUDA toolkit found (CUDA_HOME): the CPU-only extension"
    with mock.patch.object(setuptools, "setup") as setup:
        runpy.run_path(setup_py, run_name="__main__")
    ext = setup.call_args.kwargs["ext_modules"][0]
    return {"name": ext.name, "sources": len(ext.sources),
            "cuda_sources": [s for s in ext.sources if s.endswith(".cu")],
            "define_macros": [m[0] for m in ext.define_macros], "cuda_home": cpp_extension.CUDA_HOME,
            "ninja": cpp_extension.is_ninja_available(), "note": note}


def check_imports(require_cuda: bool) -> dict:
    """ops and models (and the modules the tests and benchmarks use) import; none of the blocked
    packages got loaded on the way; the extension has its kernels."""
    import importlib

    import torch

    modules = ["rubiks_service.ops", "rubiks_service.models", "rubiks_service.models.export",
               "rubiks_service.models.inference", "rubiks_service.models.profile", "rubiks_service.models.checkpoint"]
    for name in modules:
        importlib.import_module(name)
    from rubiks_service.ops import has_kernel

    blocked = os.environ.get("GPU_CHECK_BLOCK", "ray mlflow").split()
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(blocked))
    cuda = torch.cuda.is_available() and has_kernel(torch.device("cuda"))
    result = {"modules": modules, "blocked_loaded": loaded, "cpu_kernels": has_kernel(torch.device("cpu")),
              "cuda_kernels": cuda}
    result["ok"] = not loaded and (cuda or not require_cuda)
    return result


def cuda_cases(junit_path: str) -> dict:
    """Counts of a pytest JUnit XML, overall and for the CUDA cases, and each skipped CUDA case."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    cuda = dict(counts)
    skipped = []
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        node = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed"
        counts[outcome] += 1
        if CUDA_CASE.search(node):
            cuda[outcome] += 1
            if outcome == "skipped":
                skipped.append({"case": node, "reason": case.find("skipped").get("message", "")})
    ok = cuda["passed"] > 0 and cuda["skipped"] == 0
    return {"all": counts, "cuda": cuda, "cuda_skipped": skipped, "ok": ok,
            "rule": "every CUDA case (an id naming cuda) runs: none skipped, at least one passed"}


def summary(steps_tsv: str, out_json: str, extras: list[str]) -> dict:
    steps = []
    with open(steps_tsv) as f:
        for line in f:
            name, status, rc, seconds, detail = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
            steps.append({"step": name, "status": status, "rc": int(rc), "seconds": float(seconds),
                          "detail": detail})
    result = {"check": "gpu_check", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "dry_run": os.environ.get("GPU_CHECK_DRY_RUN", "0") == "1",
              "ok": all(s["status"] in ("ok", "dry-run") for s in steps), "steps": steps}
    for extra in extras:  # NAME=FILE, or NAME=FILE@KEY.KEY: that part of the file's JSON
        name, _, where = extra.partition("=")
        path, _, keys = where.partition("@")
        try:
            with open(path) as f:
                value = json.load(f)
            for key in filter(None, keys.split(".")):
                value = value[key]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            value = {"unreadable": f"{where}: {exc.__class__.__name__}"}
        result[name] = value
    with open(out_json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("preflight")
    pre.add_argument("--out")
    pre.add_argument("--require-gpu", action="store_true", help="not ok without a GPU, nvcc and a CUDA torch")
    sub.add_parser("build-plan")
    sub.add_parser("imports").add_argument("--require-cuda", action="store_true")
    cases = sub.add_parser("cuda-cases")
    cases.add_argument("junit")
    cases.add_argument("--out")
    summ = sub.add_parser("summary")
    summ.add_argument("steps_tsv")
    summ.add_argument("out_json")
    summ.add_argument("--extra", action="append", default=[], help="NAME=JSON_FILE, included as result[NAME]")
    args = parser.parse_args(argv)
    if args.command in ("preflight", "build-plan", "imports", "cuda-cases"):
        result = {"preflight": lambda: preflight(args.require_gpu), "build-plan": build_plan,
                  "imports": lambda: check_imports(args.require_cuda),
                  "cuda-cases": lambda: cuda_cases(args.junit)}[args.command]()
        text = json.dumps(result, indent=2)
        print(text)
        if getattr(args, "out", None):
            with open(args.out, "w") as f:
                f.write(text + "\n")
        return 0 if result.get("ok", True) else 1
    result = summary(args.steps_tsv, args.out_json, args.extra)
    for s in result["steps"]:
        print(f"[gpu_check] {s['step']:<14}{s['status']:<9}{s['seconds']:>7.1f} s  {s['detail']}")
    print(f"[gpu_check] {'all steps ok' if result['ok'] else 'SOME STEPS FAILED'}: {os.path.abspath(args.out_json)}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
