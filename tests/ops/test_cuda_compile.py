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

from rubiks_service.ops import has_kernel
from rubiks_service.ops._checks import output_shape

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

HARNESS = r"""
// Runs the CUDA kernels' per-block code on the host, block by block and thread
// by thread (no GPU needed). Usage:
//   harness divmod
//   harness OP DTYPE QUANTIZE N C T H W sT sH sW pT pH pW IN... OUT
// OP: fwd (in: x shift), gin (in: grad_out shift), gshift (in: grad_out x shift).
// DTYPE: f32 f64 f16 bf16; tensors are raw little-endian files.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/rubiks_shift_device.cuh"

using namespace rubiks::gpu;

template <typename T>
std::vector<T> load(const char* path, size_t n) {
  std::vector<T> v(n);
  FILE* f = std::fopen(path, "rb");
  if (!f) { std::perror(path); std::exit(2); }
  if (n && std::fread(v.data(), sizeof(T), n, f) != n) { std::fprintf(stderr, "short read %s\n", path); std::exit(2); }
  std::fclose(f);
  return v;
}

template <typename T>
void save(const char* path, const std::vector<T>& v) {
  FILE* f = std::fopen(path, "wb");
  if (!f) { std::perror(path); std::exit(2); }
  if (!v.empty()) std::fwrite(v.data(), sizeof(T), v.size(), f);
  std::fclose(f);
}

template <typename T>
std::vector<T> nan_filled(size_t n) {  // unwritten elements stay NaN
  using acc_t = typename AccType<T>::type;
  return std::vector<T>(n, from_acc<T>(static_cast<acc_t>(NAN)));
}

template <typename T>
int run(const std::string& op, const Shape3d& s, bool quantize, char** files) {
  int64_t out[3];
  output_sizes(s, out);
  const size_t in_n = s.N * s.C * s.in[0] * s.in[1] * s.in[2];
  const size_t out_n = s.N * s.C * out[0] * out[1] * out[2];
  if (const char* why = unsupported_reason(s)) { std::fprintf(stderr, "%s\n", why); return 3; }
  if (op == "fwd" || op == "gin") {
    const bool adjoint = op == "gin";
    const auto src = load<T>(files[0], adjoint ? out_n : in_n);
    const auto shift = load<T>(files[1], 3 * s.C);
    auto dst = nan_filled<T>(adjoint ? in_n : out_n);
    const Plan p = make_plan(s, adjoint, quantize);
    for (int64_t b = 0; b < p.blocks(); ++b)
      for (uint32_t t = 0; t < kThreads; ++t)
        stencil_block(src.data(), dst.data(), shift.data(), p, b, t, kThreads);
    save(files[2], dst);
  } else if (op == "gshift") {
    using acc_t = typename AccType<T>::type;
    const auto g = load<T>(files[0], out_n);
    const auto x = load<T>(files[1], in_n);
    const auto shift = load<T>(files[2], 3 * s.C);
    const Plan p = make_plan(s, false, false);
    std::vector<acc_t> partial(grad_shift_workspace_elems(s), static_cast<acc_t>(NAN));
    for (int64_t b = 0; b < p.blocks(); ++b) {
      acc_t sum[3] = {0, 0, 0};
      for (uint32_t t = 0; t < kThreads; ++t) {
        const auto r = shift_grad_thread(g.data(), x.data(), shift.data(), p, b, t, kThreads);
        sum[0] += r.t; sum[1] += r.h; sum[2] += r.w;
      }
      for (int a = 0; a < 3; ++a) partial[b * 3 + a] = sum[a];
    }
    auto grad_shift = nan_filled<T>(3 * s.C);
    if (p.blocks() > 0)
      for (int64_t i = 0; i < 3 * s.C; ++i) shift_grad_finalize_one(partial.data(), grad_shift.data(), s.C, p.chunks, i);
    std::printf("chunks %lld\n", (long long)p.chunks);
    save(files[3], grad_shift);
  } else {
    return 2;
  }
  return 0;
}

int check_divmod() {
  std::vector<uint32_t> ds, ns;
  for (uint32_t d = 1; d < 3000; ++d) ds.push_back(d);
  for (int k = 1; k < 31; ++k) for (int e = -2; e <= 2; ++e) ds.push_back((1u << k) + e);
  ds.push_back(0x7fffffffu);
  for (uint32_t n = 0; n < 5000; ++n) ns.push_back(n);
  uint64_t r = 12345;
  for (int i = 0; i < 2000; ++i) { r = r * 6364136223846793005ull + 1442695040888963407ull; ns.push_back(uint32_t(r >> 33)); }
  for (int k = 1; k < 31; ++k) for (int e = -2; e <= 2; ++e) ns.push_back((1u << k) + e);
  ns.push_back(0x7fffffffu);
  long bad = 0;
  for (uint32_t d : ds) {
    if (d == 0 || d > 0x7fffffffu) continue;
    const FastDivmod f(d);
    for (uint32_t n : ns) {
      if (n > 0x7fffffffu) continue;
      uint32_t q, m; f.divmod(n, &q, &m);
      if (q != n / d || m != n % d) { if (bad++ < 5) std::fprintf(stderr, "%u / %u -> %u %u\n", n, d, q, m); }
    }
  }
  std::printf("divmod mismatches %ld\n", bad);
  return bad ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "divmod") return check_divmod();
  if (argc < 17) { std::fprintf(stderr, "bad usage\n"); return 2; }
  const std::string op = argv[1], dtype = argv[2];
  const bool quantize = std::atoi(argv[3]) != 0;
  Shape3d s;
  s.N = std::atoll(argv[4]); s.C = std::atoll(argv[5]);
  for (int a = 0; a < 3; ++a) {
    s.in[a] = std::atoll(argv[6 + a]);
    s.stride[a] = std::atoll(argv[9 + a]);
    s.pad[a] = std::atoll(argv[12 + a]);
  }
  char** files = argv + 15;
  if (dtype == "f32") return run<float>(op, s, quantize, files);
  if (dtype == "f64") return run<double>(op, s, quantize, files);
  if (dtype == "f16") return run<__half>(op, s, quantize, files);
  if (dtype == "bf16") return run<__nv_bfloat16>(op, s, quantize, files);
  return 2;
}
"""

_CODES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.int16, torch.bfloat16: np.int16}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if not has_kernel(torch.device("cpu")):
        pytest.skip("compiled extension not built (the CPU kernels are the reference)")
    work = tmp_path_factory.mktemp("emulator")
    source = work / "harness.cu"
    source.write_text(HARNESS)
    binary = work / "harness"
    _run([NVCC, "-std=c++17", "-O2", "-I", str(EXT), str(source), "-o", str(binary), *TORCH_NVCC_FLAGS])
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


GEOMETRIES = [
    ((2, 5, 4, 7, 9), (1, 1, 1), (0, 0, 0)),
    ((2, 8, 6, 8, 8), (1, 2, 2), (0, 0, 0)),
    ((1, 6, 3, 9, 7), (1, 2, 2), (0, 1, 1)),
    ((3, 4, 5, 6, 5), (2, 3, 1), (1, 0, 2)),
    ((3, 300, 2, 4, 4), (1, 1, 1), (0, 0, 0)),  # several chunks of whole planes per channel
    ((1, 3, 2, 100, 97), (2, 1, 2), (1, 1, 0)),  # planes cut into pieces (output side)
    ((1, 2, 2, 160, 161), (1, 1, 1), (0, 0, 0)),  # planes cut into 4 pieces
    ((1, 2, 1, 181, 181), (1, 2, 2), (0, 1, 1)),  # pieces on the input side only (grad_x)
    ((2, 1, 3, 1, 5), (1, 1, 1), (0, 0, 0)),  # size-1 axes
    ((2, 3, 2, 5, 1), (3, 3, 3), (2, 2, 2)),  # padding larger than the input
]
# float16/bfloat16: the kernels compute in float32 and round once; compared with
# float64 on the same rounded inputs
TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@pytest.mark.parametrize("shape,stride,padding", GEOMETRIES)
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
    tol = TOL[dtype]
    for op, ref in expected.items():
        got = _emulate(emulator, op, inputs[op], shape, stride, padding, quantize, dtype, ref.shape)
        assert not got.isnan().any(), f"{op}: elements left unwritten"
        atol = tol * max(1.0, ref.abs().max().item()) if op == "gshift" else tol
        torch.testing.assert_close(got.double(), ref, atol=atol, rtol=tol, msg=lambda m: f"{op}: {m}")
