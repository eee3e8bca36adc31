import pytest
import torch


@pytest.fixture
def no_tf32():
    """Full float32 matmuls and convolutions on the GPU (TF32 would hide a 1e-5 comparison)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
