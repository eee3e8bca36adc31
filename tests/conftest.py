import os

import pytest
import torch
from hypothesis import settings

from tests.helpers.s3 import s3_server  # noqa: F401  (one S3 server per session: moto's state is per process)

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
