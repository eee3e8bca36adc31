"""Fixtures of the tracking tests (defined in tests/helpers/training.py)."""
from tests.helpers.training import colour_data, ray_cluster  # noqa: F401  (shared fixtures)
