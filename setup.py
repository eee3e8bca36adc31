"""Builds the compiled extension rubiks_service._C from ext/.

CPU kernels always; CUDA kernels (ext/cuda/*.cu) when torch has CUDA and nvcc
is present. Install with `pip install --no-build-isolation .` so the build
sees the torch already installed in the environment.
"""
import glob
import os

from setuptools import setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def _extension():
    # -fopenmp, not just -fopenmp-simd: without it at::parallel_for compiles to a serial loop in the
    # kernels (ATen picks its OpenMP path by _OPENMP); libgomp is the one torch already loads
    cxx = ["-O3", "-fopenmp", "-std=c++17"]
    if os.environ.get("RUBIKS_NATIVE", "0") == "1":  # opt in: binaries stay portable by default
        cxx.append("-march=native")
    sources = _sources("ext/*.cpp") + _sources("ext/cpu/*.cpp")
    cuda_sources = _sources("ext/cuda/*.cu") + _sources("ext/cuda/*.cpp")
    want_cuda = os.environ.get("RUBIKS_WITH_CUDA", "auto")
    use_cuda = bool(cuda_sources) and want_cuda != "0" and (
        want_cuda == "1" or (cpp_extension.CUDA_HOME is not None and _torch_has_cuda())
    )
    if use_cuda:
        return cpp_extension.CUDAExtension(
            "rubiks_service._C",
            sources + cuda_sources,
            define_macros=[("RUBIKS_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++17"]},
            extra_link_args=["-fopenmp"],
        )
    return cpp_extension.CppExtension("rubiks_service._C", sources, extra_compile_args=cxx,
                                      extra_link_args=["-fopenmp"])


def _torch_has_cuda():
    import torch

    return torch.version.cuda is not None


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
