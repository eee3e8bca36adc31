"""Fixtures of the queue tests: the shared dataset and Ray (tests/helpers/training.py), a training
config and job specs that run it."""
import pytest

from tests.helpers.training import colour_data, ray_cluster, training_config, write_yaml  # noqa: F401 (fixtures)


@pytest.fixture
def train_yaml(tmp_path, colour_data):  # noqa: F811 (the fixture above)
    return write_yaml(tmp_path / "train.yaml", training_config(colour_data, str(tmp_path / "runs")))


@pytest.fixture
def job_yaml(tmp_path):
    """`job_yaml(name, **fields)`: a train job spec (for train.yaml beside it) written to <name>.yaml."""
    def write(name: str = "job", **fields) -> str:
        return write_yaml(tmp_path / f"{name}.yaml", {"name": name, "kind": "train", "config": "train.yaml", **fields})
    return write
