"""Without the compiled extension the public functions use the reference, with a warning."""
import pytest
import torch

from rubiks_service.ops import _extension, functional, reference


def test_fallback_warns_and_matches(monkeypatch):
    monkeypatch.setattr(_extension, "_KERNELS", {"cpu": False, "cuda": False})
    monkeypatch.setattr(_extension, "_warned", set())
    x = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64)
    shift = torch.rand(3, 3, dtype=torch.float64) * 2 - 1
    with pytest.warns(RuntimeWarning, match="pure-PyTorch reference"):
        out = functional.rubiks_shift3d(x, shift, (1, 2, 2), (0, 1, 1))
    torch.testing.assert_close(out, reference.shift3d(x, shift, (1, 2, 2), (0, 1, 1)))
