"""The RubiksShift operator: compiled kernels (ext/), reference, modules, gradient normalisation.

Imports torch only: this layer must run on a bare GPU box without ray or mlflow.
"""
from ._extension import has_kernel
from .functional import rubiks_shift2d, rubiks_shift3d
from .grad_norm import normalize_shift_grad, with_normalized_grad
from .modules import RubiksShift2d, RubiksShift3d, init_shift_tsm_, init_shift_uniform_

__all__ = [
    "RubiksShift2d",
    "RubiksShift3d",
    "has_kernel",
    "init_shift_tsm_",
    "init_shift_uniform_",
    "normalize_shift_grad",
    "rubiks_shift2d",
    "rubiks_shift3d",
    "with_normalized_grad",
]
