"""Compile checks of the CUDA kernels, and their per-block code run on the host.

Needs nvcc, not a GPU. ext/cuda/rubiks_shift_kernels.cu is ATen-free, so a bare
`nvcc -c` builds it (sm_80 and sm_90, with the flags torch's extension build adds).
The kernels' work is written as __host__ __device__ functions of (block, thread)
(ext/cuda/rubiks_shift_device.cuh); a small host program compiled by nvcc runs
them block by block, thread by thread, and the results are compared with the CPU
kernels here. That checks the indexing, chunking, taps and the per-thread
shift-gradient terms without a GPU; the warp-shuffle reduction and the launch
itself are left to tests/ops/test_cuda.py on a GPU machine.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from rubiks_service.ops._checks import output_shape

from ._helpers import DTYPE_TOL, HAS_CPU_KERNEL, SPLIT_GEOMETRIES

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "ext"
KERNELS = EXT / "cuda" / "rubiks_shift_kernels.cu"
# what torch.utils.cpp_extension passes to nvcc for every .cu (no implicit half conversions)
TORCH_NVCC_FLAGS = [
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
    "--expt-relaxed-constexpr",
]


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    default = "/usr/local/cuda/bin/nvcc"
    return default if os.access(default, os.X_OK) else None


NVCC = _nvcc()
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


def _run(cmd, timeout=240):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result


def test_kernel_sources_are_aten_free():
    names = ["cuda/rubiks_shift_kernels.cu", "cuda/rubiks_shift_kernels.h", "cuda/rubiks_shift_device.cuh",
             "shift_taps.h"]
    for path in (EXT / name for name in names):
        includes = re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', path.read_text(), re.M)
        assert includes, path
        for name in includes:
            assert not name.startswith(("ATen", "c10", "torch")), f"{path.name} includes {name}"


def test_kernels_compile(tmp_path):
    obj = tmp_path / "k.o"
    cmd = [
        NVCC, "-std=c++17", "-O3", "-c", str(KERNELS), "-I", str(EXT), "-o", str(obj),
        "-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90",
        "--resource-usage", *TORCH_NVCC_FLAGS,
    ]
    result = _run(cmd)
    assert obj.stat().st_size > 0
    # ptxas reports every kernel it assembled: 3 kernels x 4 scalar types x 2 machine codes
    report = result.stdout + result.stderr
    entries = set(re.findall(r"Compiling entry function '(\w+)' for '(sm_\d+)'", report))
    for kernel in ("stencil_kernel", "shift_grad_partial_kernel", "shift_grad_finalize_kernel"):
        for scalar in ("If", "Id", "I6__half", "I13__nv_bfloat16"):
            for arch in ("sm_80", "sm_90"):
                assert any(kernel + scalar in name and a == arch for name, a in entries), (kernel, scalar, arch)


# ---- the per-block code, run on the host ----------------------------------------

HARNESS = Path(__file__).resolve().parent / "cuda_harness" / "block_emulator.cu"  # the host program

_CODES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.int16, torch.bfloat16: np.int16}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if not HAS_CPU_KERNEL:
        pytest.skip("compiled extension not built (the CPU kernels are the reference)")
    work = tmp_path_factory.mktemp("emulator")
    binary = work / "block_emulator"
    _run([NVCC, "-std=c++17", "-O2", "-I", str(EXT), str(HARNESS), "-o", str(binary), *TORCH_NVCC_FLAGS])
    return binary, work


def _write(path: Path, t: torch.Tensor) -> str:
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    path.write_bytes(t.numpy().tobytes())
    return str(path)


def _read(path: Path, dtype, shape) -> torch.Tensor:
    data = torch.from_numpy(np.frombuffer(path.read_bytes(), dtype=_NUMPY[dtype]).copy())
    if dtype in (torch.float16, torch.bfloat16):
        data = data.view(dtype)
    return data.reshape(shape)


def _emulate(emulator, op, inputs, shape, stride, padding, quantize, dtype, out_shape):
    binary, work = emulator
    files = [_write(work / f"in{i}", t) for i, t in enumerate(inputs)]
    out = work / "out"
    n, t, c, h, w = shape
    args = [str(binary), op, _CODES[dtype], str(int(quantize)), *map(str, (n, c, t, h, w)),
            *map(str, stride), *map(str, padding), *files, str(out)]
    _run(args, timeout=60)
    return _read(out, dtype, out_shape)


def test_fast_divmod(emulator):
    binary, _ = emulator
    assert "mismatches 0" in _run([str(binary), "divmod"]).stdout


@pytest.mark.parametrize("shape,stride,padding", SPLIT_GEOMETRIES)
@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("dtype", list(_CODES), ids=list(_CODES.values()))
def test_emulated_kernels_match_cpu(emulator, shape, stride, padding, quantize, dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    shift = (torch.rand(3, shape[2], generator=gen, dtype=torch.float64) * 6 - 3).to(dtype)
    out_shape = output_shape(shape, stride, padding)
    grad = torch.randn(out_shape, generator=gen, dtype=torch.float64).to(dtype)
    ops = torch.ops.rubiks
    x64, s64, g64 = x.double(), shift.double(), grad.double()
    st, pd = list(stride), list(padding)
    expected = {
        "fwd": ops.shift3d(x64, s64, st, pd, quantize),
        "gin": ops.shift3d_grad_input(g64, s64, list(shape), st, pd, quantize),
        "gshift": ops.shift3d_grad_shift(g64, x64, s64, st, pd),
    }
    inputs = {"fwd": [x, shift], "gin": [grad, shift], "gshift": [grad, x, shift]}
    tol = DTYPE_TOL[dtype]  # float16/bfloat16: computed in float32, rounded once
    for op, ref in expected.items():
        got = _emulate(emulator, op, inputs[op], shape, stride, padding, quantize, dtype, ref.shape)
        assert not got.isnan().any(), f"{op}: elements left unwritten"
        atol = tol * max(1.0, ref.abs().max().item()) if op == "gshift" else tol
        torch.testing.assert_close(got.double(), ref, atol=atol, rtol=tol, msg=lambda m: f"{op}: {m}")
